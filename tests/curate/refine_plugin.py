"""A user plug-in for the `refine` step: a program per document ("module:function")."""

from vloom.doc import Document


def program(doc: Document) -> list[dict] | None:
    """Drop pages that shout about prices; strip a "Figure N." caption prefix elsewhere."""
    if "$$$" in doc.text:
        return [{"op": "drop_doc", "reason": "price_spam"}]
    if "Figure" in doc.text:
        return [{"op": "normalize", "find": r"Figure \d+\.\s*", "replace": "", "regex": True}]
    return None


def bad_program(doc: Document) -> list[dict]:
    return [{"op": "delete_everything"}]
