"""Language detection for posts whose source did not say their language.

A small detector by function words: short posts are mostly made of them, each language
has its own, and counting them costs microseconds, where statistical detectors cost a
millisecond a post, more than the whole rest of validation. It knows the languages of
Vigie's users and their neighbours; anything it is unsure of is left undetermined
("und") rather than guessed.
"""

from __future__ import annotations

import re
from functools import lru_cache

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "fr": frozenset(
        "le la les un une des du de et est sont pas ne je tu il elle nous vous ils elles "
        "ce cette ces mon ma mes ton ta tes son sa ses notre votre leur leurs qui que quoi "
        "dans sur avec pour par sans chez mais ou donc car très plus moins aussi encore "
        "déjà toujours jamais rien tout tous toute c'est j'ai n'est qu'il d'un d'une au "
        "aux été être avoir fait faire comme quand alors voilà merci bonjour oui non ça "
        "y en lui moi toi on était".split()),
    "en": frozenset(
        "the a an and is are was were be been not no i you he she we they it this that "
        "these those my your his her our their who what which in on at with for from by "
        "but or so very more less also still already always never nothing all of to "
        "have has had do does did will would can could should just like when then "
        "thanks hello yes me him them there here it's i'm don't can't doesn't".split()),
    "es": frozenset(
        "el la los las un una unos unas y es son no yo tú él ella nosotros ellos que "
        "en con por para sin pero muy más también ya siempre nunca nada todo del al "
        "lo le les se su sus mi mis este esta estos está están hay gracias hola sí "
        "como cuando porque".split()),
    "de": frozenset(
        "der die das ein eine und ist sind nicht kein ich du er sie wir ihr es mit für "
        "von auf aber oder sehr mehr auch noch schon immer nie nichts alle zu im den "
        "dem des mein dein sein unser wie wenn dann danke hallo ja nein hat haben "
        "wird werden kann bin bist".split()),
    "it": frozenset(
        "il lo la i gli le un uno una e è sono non io tu lui lei noi voi loro che di "
        "in con per su ma molto più anche già sempre mai niente tutto del della dei "
        "delle al alla questo questa mio mia suo sua come quando perché grazie ciao "
        "sì ho hai ha abbiamo".split()),
    "pt": frozenset(
        "o a os as um uma e é são não eu tu ele ela nós vocês eles que de em com por "
        "para sem mas muito mais também já sempre nunca nada tudo do da dos das no na "
        "nos nas este esta isso meu minha seu sua como quando porque obrigado olá sim "
        "está estão tem foi".split()),
    "nl": frozenset(
        "de het een en is zijn niet geen ik jij hij zij wij jullie het met voor van op "
        "maar of heel meer ook nog al altijd nooit niets alle te in dat die dit mijn "
        "jouw zijn ons hoe wanneer dan bedankt hallo ja nee heeft hebben wordt kan".split()),
}
# Letters that only some of these languages use.
LETTER_HINTS: dict[str, str] = {
    "fr": "çèêëîïôœùûÿ", "es": "ñ¿¡", "de": "äöüß", "pt": "ãõ", "it": "ìò",
}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# The winner must lead the runner-up by this many points to be trusted.
MIN_MARGIN = 1.0


@lru_cache(maxsize=8192)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when unsure."""
    lowered = text.lower()
    scores = dict.fromkeys(FUNCTION_WORDS, 0.0)
    for word in _WORD.findall(lowered):
        for language, words in FUNCTION_WORDS.items():
            if word in words:
                scores[language] += 1.0
        if "'" in word:  # French elisions: l'équipe, d'accord, qu'on
            head = word.split("'", 1)[0]
            if head in {"l", "d", "j", "n", "qu", "c", "s", "m", "t"}:
                scores["fr"] += 1.0
    for language, letters in LETTER_HINTS.items():
        if any(letter in lowered for letter in letters):
            scores[language] += 1.5
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top < 1.0 or top - second < MIN_MARGIN:
        return None
    return best
