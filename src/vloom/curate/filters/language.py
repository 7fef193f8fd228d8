"""Language identification: keep documents in the wanted languages, offline.

Backends: lingua (`lingua-language-detector`, its n-gram models ship inside the
wheel) by default, or a fastText LID model the user supplies (`fasttext_model`, e.g.
lid.176.bin; labels `__label__<code>`). The detector is built once per process and
shared by every step instance that asks for the same one. Only the first
`max_chars` characters of the text items are scored (cut at a space), which is
plenty for a confident call and keeps long documents cheap.

The verdict, as in datatrove's `LanguageFilter` (threshold 0.65): the top language
and its score are written to `Document.language` and `metadata["language_score"]`;
the document is kept if that language is in `keep` (None: any) and its score is at
least `min_score`; `label_only` only writes the language. Text shorter than `min_chars`: a document with images is kept
unjudged (a short caption says little about its language; the image is the data),
a text-only one is dropped as "too_short_for_lid" unless `on_short: keep`.

Cost, per worker process, with the default 41 languages (measured on a loaded
2-core machine): lingua's high-accuracy mode loads its 1- to 5-gram models the
first time it meets a short text, about 20 s and 750 MB RSS; `low_accuracy: true`
uses trigram models only, about 1 s and 120 MB, and is as good on texts longer than
about 120 characters but weaker on captions. Fewer `languages` cost less in both.
"""

from __future__ import annotations

from typing import Any, Literal

from vloom.curate.base import Filter
from vloom.curate.filters.text_stats import text_items
from vloom.curate.registry import register
from vloom.doc import Document

DEFAULT_LANGUAGES = (
    "ar", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr",
    "he", "hi", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "nb", "nl", "pl",
    "pt", "ro", "ru", "sk", "sl", "sr", "sv", "th", "tr", "uk", "ur", "vi", "zh",
)  # fmt: skip

_CACHE: dict[tuple[Any, ...], Any] = {}  # one detector per process and configuration


def lingua_detector(languages: tuple[str, ...], low_accuracy: bool) -> Any:
    """The lingua detector for these ISO 639-1 codes, built once per process."""
    key = ("lingua", languages, low_accuracy)
    if key not in _CACHE:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        codes = []
        for c in languages:
            try:
                codes.append(IsoCode639_1.from_str(c))
            except ValueError:
                raise ValueError(f"lingua has no language with ISO 639-1 code {c!r}") from None
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        _CACHE[key] = builder.build()
    return _CACHE[key]


def load_fasttext(path: str) -> Any:
    """A fastText model from `path`, loaded once per process; ValueError if it is not one."""
    key = ("fasttext", path)
    if key not in _CACHE:
        import fasttext

        try:
            _CACHE[key] = fasttext.load_model(path)
        except ValueError as e:
            raise ValueError(f"{path}: cannot load as a fastText model ({e})") from None
    return _CACHE[key]


@register("language")
class LanguageFilter(Filter):
    """Keep documents whose detected language is in `keep` with score >= `min_score`."""

    def __init__(
        self,
        keep: tuple[str, ...] | None = ("en",),
        min_score: float = 0.65,
        languages: list[str] | None = None,
        low_accuracy: bool = False,
        fasttext_model: str | None = None,
        max_chars: int = 3000,
        min_chars: int = 20,
        on_short: Literal["drop", "keep"] = "drop",
        label_only: bool = False,
    ) -> None:
        super().__init__()
        self.keep = None if keep is None else frozenset(keep)
        self.min_score = min_score
        self.max_chars = max_chars
        self.min_chars = min_chars
        self.on_short = on_short
        self.label_only = label_only
        self.fasttext_path = fasttext_model
        if languages is not None and not languages:
            raise ValueError("languages is empty; leave it out for the default list")
        self.languages = tuple(sorted(set(DEFAULT_LANGUAGES if languages is None else languages)))
        self.low_accuracy = low_accuracy
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        if fasttext_model is not None:
            load_fasttext(fasttext_model)  # fail now, with the file's name, if unusable
        else:
            missing = sorted((self.keep or frozenset()) - set(self.languages))
            if missing:
                raise ValueError(
                    f"keep language(s) {', '.join(missing)} not among the detector's languages"
                )
            lingua_detector(self.languages, low_accuracy)

    def _sample(self, doc: Document) -> str:
        text = " ".join(" ".join(t.split()) for t in text_items(doc))
        if len(text) > self.max_chars:
            cut = text.rfind(" ", 0, self.max_chars)
            text = text[: cut if cut > 0 else self.max_chars]
        return text

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code, score in [0, 1]) of the most likely language; ("", 0.0) if none."""
        if self.fasttext_path is not None:
            labels, probs = load_fasttext(self.fasttext_path).predict(text, k=1)
            if not labels:
                return "", 0.0
            return labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0)
        best = lingua_detector(
            self.languages, self.low_accuracy
        ).compute_language_confidence_values(text)[0]
        if best.value <= 0:
            return "", 0.0
        return best.language.iso_code_639_1.name.lower(), float(best.value)

    def filter(self, doc: Document) -> tuple[bool, str]:
        text = self._sample(doc)
        if len(text) < self.min_chars:
            if doc.n_images or self.on_short == "keep" or self.label_only:
                return True, ""
            return False, "too_short_for_lid"
        lang, score = self.detect(text)
        if lang:
            doc.language = lang
        doc.metadata["language_score"] = round(score, 4)
        if self.label_only:
            return True, ""
        if score < self.min_score:
            return False, "low_language_score"
        if self.keep is not None and lang not in self.keep:
            return False, "wrong_language"
        return True, ""
