"""Terms and hashtags that surge with a wave: counted in its posts, compared with before.

`extract_terms` turns a post into its distinct terms: hashtags kept with their `#`, words
of three letters or more, without links, numbers, the brand's own names, and the function
words (articles, pronouns, prepositions, auxiliaries...) of the languages Vigie reads:
French, English, Spanish, German, Italian, Portuguese and Dutch (`STOPWORDS`). Function
words are checked in every language whatever the post's language, because short posts mix
them and are often mislabelled; elisions are undone first (l'équipe -> équipe,
s'expliquer -> expliquer) and a word counts with or without its accents (apres, après).
`TermBaseline` keeps a decaying document frequency of terms over the brand's past posts,
bounded in size, so that `surging` can say which terms of the wave are far more frequent
than usual.

The lists were written for this project from the grammar of each language (closed word
classes plus the commonest auxiliary and modal forms and social-media fillers), not copied.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from models.text import without_combining

__all__ = ["STOPWORDS", "extract_terms", "is_stopword", "TermBaseline"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        """
        a about above after again against all almost along already also although always am among
        an and another any anybody anyone anything anyway anywhere are aren't around as at away
        back be became because become been before being below beside besides between beyond both
        but by can can't cannot cant could couldn't did didn't didnt do does doesn't doesnt
        doing don't done dont down during each either else enough even ever every everybody
        everyone everything everywhere few for from further get gets getting go goes going gone
        gonna got gotta gotten had hadn't has hasn't have haven't having he he'd he'll he's her
        here here's hers herself him himself his how how's however i i'd i'll i'm i've if im in
        inside instead into is isn't isnt it it's its itself ive just least less let let's like
        lol lot lots made make makes many may maybe me might mine more most much must mustn't my
        myself near neither never no nobody none nor not nothing now nowhere of off often oh ok
        okay on once one only onto or other others otherwise ought our ours ourselves out
        outside over own per perhaps please quite rather really rt said same say says see seem
        seems shall shan't she she'd she'll she's should shouldn't since so some somebody
        someone something sometimes somewhere soon still such than that that's thats the their
        theirs them themselves then there there's therefore theres these they they'd they'll
        they're they've thing things this those though through thru thus till to today too
        toward towards under until up upon us very via wanna was wasn't we we'd we'll we're
        we've well were weren't what what's whatever when when's whenever where where's wherever
        whether which while who who's whoever whole whom whose why why's will with within
        without won't wont would wouldn't yes yet you you'd you'll you're you've your youre
        yours yourself yourselves
        """
    ),  # English
    "fr": _words(
        """
        a afin ai aie aient aies ait aller allez alors apres après as assez au aucun aucune
        aujourd'hui aupres auprès auquel aura aurai auraient aurais aurait auras aurez auriez
        aurions aurons auront aussi autant autre autres aux auxquelles auxquels avaient avais
        avait avant avec avez aviez avions avoir avons ayant ayez ayons bah beaucoup ben bien
        bon c c'est car ce ceci cela celle celles celui cependant certaines certains ces cet
        cette ceux chacun chaque chez ci comme comment contre d d'un d'une dans de deja depuis
        des desquelles desquels devait devrait dois doit doivent donc dont du duquel durant dès
        déjà elle elles en encore entre est et eu eue eues eurent eus eusse eut eux eûmes faire
        fais faisait fait faut fois font furent fus fut ici il ils j j'ai je jusqu jusque l l'on
        la laquelle le lequel les lesquelles lesquels leur leurs lors lorsque lui là m ma mais
        me meme mes moi moins mon même mêmes n n'est ne ni non nos notre nous nôtre on ont or ou
        ouais oui où par parce parmi pas pendant peu peut peuvent peux plupart plus plusieurs
        pour pourquoi pourrait pourtant pouvait puis qu qu'elle qu'il quand que quel quelle
        quelles quels qui quoi s sa sans se sera serai seraient serais serait seras serez seriez
        serions serons seront ses si sien sienne soi soient sois soit sommes son sont sous suis
        sur t ta tandis tant te tel telle telles tels tes toi ton toujours tous tout toute
        toutes tres trop très tu un une unes uns v va vais vers voici voila voilà vont vos votre
        vous vu vôtre y à ça étaient étais était étant étiez étions été êtes être
        """
    ),  # French
    "es": _words(
        """
        después despues
        a al algo alguien alguna algunas alguno algunos algún allí ante antes aquel aquella
        aquellas aquello aquellos aquí así aun aún bajo bien cada casi como con contra cual
        cuales cuando cuanto cuál cuándo cuánto cómo de del desde donde dos durante dónde e el
        ella ellas ello ellos en entre era erais eran eras eres es esa esas ese eso esos esta
        estaba estaban estado estamos estar estas este esto estos estoy está están fue fueron
        fui fuimos ha habéis había habían hace hacen hacer hacia han has hasta hay he hemos la
        las le les lo los mas me mi mis mucho muchos muy más mí nada ni no nos nosotras nosotros
        nuestra nuestras nuestro nuestros nunca o os otra otras otro otros para pero poco por
        porque que quien quienes quién qué se sea sean según ser si siempre sin sino sobre son
        su sus sí también tampoco tan tanto te tenemos tener tengo tiene tienen todo todos tras
        tu tus tú un una unas uno unos usted ustedes va van vez vosotras vosotros voy y ya yo él
        éramos
        """
    ),  # Spanish
    "de": _words(
        """
        ab aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
        anderes auch auf aus bei beim bin bis bist da dabei damit dann das dass daß dein deine
        deinem deinen deiner dem den denn der deren des dessen dich die dies diese diesem diesen
        dieser dieses dir doch dort du durch ein eine einem einen einer eines einig einige er es
        etwas euch euer eure für gegen gewesen hab habe haben hat hatte hatten hier hin hinter
        ich ihm ihn ihnen ihr ihre ihrem ihren ihrer ihres im in indem ins ist jede jedem jeden
        jeder jedes jene jetzt kann kein keine keinem keinen keiner können könnte man manche
        mein meine meinem meinen meiner mich mir mit muss musste nach nicht nichts noch nun nur
        ob oder ohne schon sehr sein seine seinem seinen seiner selbst sich sie sind so solche
        soll sollte sondern sonst um und uns unser unsere unter viel vom von vor wann war waren
        warum was weil weiter welche welchem welchen welcher welches wenn wer werde werden wie
        wieder will wir wird wirklich wo wollen wurde würde zu zum zur zwar zwischen über
        """
    ),  # German
    "it": _words(
        """
        dopo prima
        a ad agli ai al alla alle allo anche ancora avere aveva avevano ben che chi ci coi col
        come con contro cui da dagli dai dal dalla dalle dallo degli dei del della delle dello
        di dove e ed era erano essere fa fino fra già gli ha hai hanno ho il in io la le lei li
        lo loro lui ma mai me mi mia mie miei mio molto ne negli nei nel nella nelle nello
        niente noi non nostra nostre nostri nostro nulla o ogni per perché però più poco poi
        quale quali quando quanto quella quelle quelli quello questa queste questi questo qui se
        sei sempre si sia siamo siete sono sopra sotto su sua sue sugli sui sul sulla sulle
        sullo suo suoi tra tu tua tue tuo tuoi tutti tutto un una uno vi voi è
        """
    ),  # Italian
    "pt": _words(
        """
        são sou somos estava estavam pra pro né lá aqui ali então assim onde vai vou
        a ainda ao aos aquela aquelas aquele aqueles aquilo as até com como da das de dela delas
        dele deles depois do dos e ela elas ele eles em entre era eram essa essas esse esses
        esta estas este estes estou está estão eu foi fomos for foram há isso isto já lhe lhes
        mais mas me mesmo meu meus minha minhas muito na nada nas nem no nos nossa nossas nosso
        nossos num numa nunca não nós o os ou para pela pelas pelo pelos por porque quando que
        quem se sem sempre ser seu seus sua suas só também te tem tenho ter teu teus toda todas
        todo todos tu tua tuas tudo têm um uma você vocês vos à às é
        """
    ),  # Portuguese
    "nl": _words(
        """
        aan al alle alles als altijd ander andere ben bij daar dan dat de der deze die dit doch
        doen door dus een eens en er ge geen geweest haar had heb hebben heeft hem het hier hij
        hoe hun iemand iets ik in is ja je jij jou jouw jullie kan kon kunnen maar me meer met
        mij mijn moet na naar niet niets nog nooit nu of om omdat onder ons ook op over reeds te
        tegen toch toen tot u uit uw van veel voor want waren was wat we wel werd wezen wie wij
        wil worden wordt zal ze zei zelf zich zij zijn zo zonder zou
        """
    ),  # Dutch
}
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# A hashtag, or a word with its elisions and inner apostrophes (don't, aujourd'hui).
_TOKEN = re.compile(r"#\w+|\w+(?:'\w+)*", re.UNICODE)
# French and Italian elided articles and pronouns: l'équipe, d'un, qu'il, c'est, all'ora.
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu|all|dell|nell|sull)'")
_WEB = frozenset("http https www com amp via".split())


def _strip_accents(word: str) -> str:
    if word.isascii():  # its own NFD form, no accent
        return word
    return without_combining(unicodedata.normalize("NFD", word))


_ALL_STOPWORDS = frozenset().union(*STOPWORDS.values()) | _WEB
_ALL_STOPWORDS |= frozenset(_strip_accents(word) for word in _ALL_STOPWORDS)


def is_stopword(word: str) -> bool:
    """True for a function word of any language Vigie reads, accents or not.

    >>> [is_stopword(w) for w in ("après", "apres", "chez", "the", "weil", "fuite")]
    [True, True, True, True, True, False]
    """
    word = word.lower()
    return word in _ALL_STOPWORDS or _strip_accents(word) in _ALL_STOPWORDS


def extract_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """Distinct lowercased terms of a post, minus function words and the `ignore` terms.

    >>> sorted(extract_terms("Je résilie tout chez ACME après ces révélations #AcmeLeaks",
    ...                      ["acme"]))
    ['#acmeleaks', 'résilie', 'révélations']
    >>> sorted(extract_terms("ACME doit s'expliquer: https://t.co/x1 l'équipe savait", ["acme"]))
    ['expliquer', 'savait', 'équipe']
    """
    ignored = {term.lower() for term in ignore}
    terms = set()
    text = _URL.sub(" ", text.replace("\u2019", "'").lower())
    for token in _TOKEN.findall(text):
        if not token.startswith("#"):
            token = _ELISION.sub("", token)
            if len(token) < 3 or token.isdigit() or is_stopword(token):
                continue
        elif token[1:] in ignored or token[1:].isdigit():
            continue
        if token in ignored:
            continue
        terms.add(token)
    return terms


class TermBaseline:
    """Decaying document frequency of terms, at most `max_terms` of them.

    >>> from collections import Counter
    >>> baseline = TermBaseline()
    >>> for _ in range(50):  # ordinary days: parcels and deliveries
    ...     baseline.learn(Counter({"livraison": 1, "colis": 1}), documents=2, decay=0.99)
    >>> wave = Counter({"#acmeleaks": 30, "livraison": 2})
    >>> [term["term"] for term in baseline.surging(wave, documents=30, limit=3)]
    ['#acmeleaks']
    """

    def __init__(self, max_terms: int = 2000) -> None:
        self.max_terms = max_terms
        self.frequency: dict[str, float] = {}
        self.documents = 0.0

    def learn(self, term_counts: Counter[str], documents: int, decay: float) -> None:
        """Fold one interval's term counts (over `documents` posts) in, after decaying."""
        if decay < 1.0:
            for term in list(self.frequency):
                value = self.frequency[term] * decay
                if value < 0.01:
                    del self.frequency[term]
                else:
                    self.frequency[term] = value
        self.documents = self.documents * decay + documents
        for term, count in term_counts.items():
            self.frequency[term] = self.frequency.get(term, 0.0) + count
        if len(self.frequency) > 2 * self.max_terms:
            kept = sorted(self.frequency.items(), key=lambda item: -item[1])[: self.max_terms]
            self.frequency = dict(kept)

    def surging(
        self, term_counts: Counter[str], documents: int, limit: int, min_count: int = 2
    ) -> list[dict[str, object]]:
        """Terms of a wave (counts over `documents` posts) ranked by lift over the baseline."""
        if documents <= 0:
            return []
        rows = []
        for term, count in term_counts.items():
            if count < min_count:
                continue
            share_now = count / documents
            # Half a post of prior keeps never-seen terms finite and ranks them by count.
            share_before = (self.frequency.get(term, 0.0) + 0.5) / (self.documents + 1.0)
            lift = share_now / share_before
            if lift >= 2.0:
                rows.append({"term": term, "count": int(count), "lift": round(lift, 1)})
        rows.sort(key=lambda row: (-row["count"], -row["lift"], row["term"]))  # type: ignore[operator]
        return rows[:limit]

    def to_state(self) -> dict[str, object]:
        return {"documents": self.documents, "frequency": dict(self.frequency)}

    def load_state(self, state: dict[str, object]) -> None:
        self.documents = float(state["documents"])  # type: ignore[arg-type]
        self.frequency = {
            str(k): float(v)
            for k, v in dict(state["frequency"]).items()  # type: ignore[call-overload]
        }
