from .modeling_clip_teacher import ClipTeacherForImageTextPreTraining, ClipTeacherOutput

__all__ = ["ClipTeacherForImageTextPreTraining", "ClipTeacherOutput"]
