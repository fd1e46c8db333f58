"""Text-video retrieval metrics as an ``evaluate`` module: R@K, MdR, MnR in both directions, several captions per video.

Load it offline from the installed package::

    import evaluate
    from hf_videolang.evaluation import VIDEO_TEXT_RETRIEVAL_METRIC_PATH

    metric = evaluate.load(VIDEO_TEXT_RETRIEVAL_METRIC_PATH)
    metric.compute(predictions=similarity_rows, references=text_to_video)

The numbers are those of :func:`hf_videolang.evaluation.metrics.retrieval_metrics` (this module calls it).
"""

import datasets
import evaluate

from hf_videolang.evaluation.metrics import retrieval_metrics

_CITATION = """\
@inproceedings{xu2016msrvtt,
  title={MSR-VTT: A Large Video Description Dataset for Bridging Video and Language},
  author={Xu, Jun and Mei, Tao and Yao, Ting and Rui, Yong},
  booktitle={CVPR},
  year={2016}
}
"""

_DESCRIPTION = """\
Text-to-video and video-to-text retrieval: recall at K (percent), median rank (MdR) and mean rank (MnR), ranks
1-based. Each prediction is one text's row of similarity scores over all videos; its reference is the column of
the video it describes. Several texts may describe one video: video-to-text counts a video's best-ranked caption.
Ties are broken pessimistically by default (a wrong video scoring exactly as high as the right one ranks above it).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): `(num_texts, num_videos)` similarity scores, higher = more similar.
    references (`list` of `int`): the video column of each text; every video needs at least one text.
    ks (`list` of `int`, defaults to `[1, 5, 10]`): cut-offs of R@K.
    ties (`str`, defaults to `"pessimistic"`): `"pessimistic"` or `"optimistic"`.

Returns:
    `t2v_R@K`, `t2v_MdR`, `t2v_MnR`, the same for `v2t_`, `mean_R` and `rsum`.

Examples:
    >>> metric = evaluate.load(path)
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1], ks=[1])["t2v_R@1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VideoTextRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, ks=(1, 5, 10), ties="pessimistic"):
        return retrieval_metrics(predictions, references, ks=tuple(ks), ties=ties)
