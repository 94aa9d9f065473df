"""A synthetic but realistic French/English stream of posts about the watched brands.

Background chatter follows a daily rhythm (quiet nights, lunch and evening peaks) with a
brand's usual mix of sentiment; a share of posts are reshares of recent ones; authors'
audiences are heavy-tailed, with a few influencers reaching hundreds of thousands.
Scripted incidents (`Scenario`) are laid on top, among them the wikirévélation: one
account leaks a document, influencers pick it up, and within minutes thousands of negative
posts and reshares follow.

Deterministic for a given seed: tests and the demo see the same stream every time.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

PLATFORM_WEIGHTS = {"twitter": 55, "facebook": 12, "instagram": 8, "mastodon": 5,
                    "bluesky": 6, "reddit": 6, "forum": 4, "blog": 2, "news": 2}
PLATFORM_URLS = {
    "twitter": "https://x.com/{handle}/status/{id}",
    "facebook": "https://www.facebook.com/{handle}/posts/{id}",
    "instagram": "https://www.instagram.com/p/{id}/",
    "mastodon": "https://mastodon.social/@{handle}/{id}",
    "bluesky": "https://bsky.app/profile/{handle}.bsky.social/post/{id}",
    "reddit": "https://www.reddit.com/r/france/comments/{id}/",
    "forum": "https://forum.example.org/t/{id}",
    "blog": "https://blog.example.org/{handle}/{id}",
    "news": "https://news.example.org/article/{id}",
}

# Templates: {b} is how the brand is written (name, alias, hashtag or handle).
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "fr": {
        "positive": [
            "Franchement {b} assure, service client au top aujourd'hui",
            "Très contente de mon nouvel abonnement {b} 👍",
            "Merci {b} pour la réactivité, problème réglé en 10 minutes",
            "La nouvelle offre de {b} est vraiment intéressante",
            "Bravo à {b} pour cette initiative, c'est top",
        ],
        "neutral": [
            "Quelqu'un sait à quelle heure ouvre l'agence {b} ce samedi ?",
            "{b} annonce ses résultats trimestriels jeudi",
            "Je viens de recevoir un courrier de {b}",
            "Comparatif des offres : {b} face à la concurrence",
            "Réunion avec {b} prévue la semaine prochaine",
        ],
        "negative": [
            "Encore une panne chez {b}, ça commence à bien faire",
            "Service client {b} injoignable depuis deux jours, inadmissible",
            "{b} m'a facturé deux fois, aucune réponse à mes mails",
            "Très déçu par {b}, je vais résilier",
            "Franchement {b} c'est de pire en pire",
        ],
    },
    "en": {
        "positive": [
            "Really impressed with {b} customer support today",
            "Loving the new {b} app update, works great",
            "Shout out to {b} for fixing my issue so fast",
            "{b} just nailed it with this launch",
            "Great experience with {b} this morning",
        ],
        "neutral": [
            "Does anyone know when {b} publishes its earnings?",
            "Just got an email from {b} about the new terms",
            "Comparing {b} with the alternatives this week",
            "{b} opens a new store downtown next month",
            "Meeting with the {b} team tomorrow",
        ],
        "negative": [
            "{b} has been down all morning, this is ridiculous",
            "Worst customer service ever, thanks {b}",
            "{b} charged me twice and nobody answers",
            "Really disappointed with {b}, cancelling my account",
            "Can't believe how bad {b} has become",
        ],
    },
}

LEAK_TEMPLATES: dict[str, list[str]] = {
    "fr": [
        "EXCLUSIF : des documents internes de {b} révèlent que les données de millions de "
        "clients ont été revendues #{tag}",
        "Scandale {b} : la fuite montre que la direction savait depuis des mois #{tag}",
        "C'est honteux, {b} a menti à ses clients. Lisez les documents #{tag}",
        "Je résilie tout chez {b} après ces révélations, scandaleux #{tag}",
        "{b} doit s'expliquer, ces documents sont accablants #{tag}",
        "Boycott de {b} ! Ils ont vendu nos données #{tag}",
    ],
    "en": [
        "BREAKING: leaked {b} documents show customer data was sold for years #{tag}",
        "The {b} leak is damning, management knew all along #{tag}",
        "Shameful. {b} lied to its customers, read the leaked files #{tag}",
        "Deleting my {b} account after this scandal #{tag}",
        "{b} owes everyone an explanation for this leak #{tag}",
    ],
}


# Scripted storylines for `mixed-wave` scenarios: each is one story told in French and
# English, by an original post (reshared) and paraphrases. As in real crises, paraphrases
# share the story's hashtag or key facts (names, figures) more often than its wording.
STORYLINES: dict[str, dict[str, list[str]]] = {
    "data-leak": {
        "fr": [
            "EXCLUSIF : le fichier clients de {b} revendu à des courtiers, 3 millions de "
            "comptes exposés #DataGate",
            "Fuite de données chez {b} : noms, adresses et IBAN de 3 millions de clients en "
            "vente #DataGate",
            "{b} a laissé fuiter le fichier clients, la CNIL doit enquêter #DataGate",
            "Mes données vendues par {b} ? Je veux savoir si mon compte est dans le fichier "
            "#DataGate",
            "Le fichier clients de {b} est en vente sur un forum, 3 millions de comptes",
            "Plainte à la CNIL contre {b} pour la fuite du fichier clients",
        ],
        "en": [
            "{b} customer file sold to data brokers, 3 million accounts exposed #DataGate",
            "Data leak at {b}: names, addresses and IBANs of 3 million customers for sale "
            "#DataGate",
            "Is my account in the leaked {b} customer file? #DataGate",
            "{b} leaked its customer file and said nothing for months #DataGate",
            "Regulators must investigate the {b} customer data leak, 3 million accounts",
        ],
    },
    "price-rise": {
        "fr": [
            "{b} augmente ses tarifs de 30 % au 1er janvier, sans prévenir personne "
            "#HausseDesPrix",
            "+30 % sur ma facture {b}, cette hausse des tarifs est scandaleuse #HausseDesPrix",
            "Hausse de 30 % des tarifs {b} : je change de fournisseur",
            "{b} justifie la hausse des tarifs par l'inflation, personne n'y croit "
            "#HausseDesPrix",
            "Ma facture {b} explose avec la nouvelle hausse des tarifs #HausseDesPrix",
        ],
        "en": [
            "{b} raises prices by 30% from January with no notice #HausseDesPrix",
            "My {b} bill jumps 30% after the price hike, outrageous #HausseDesPrix",
            "The {b} price hike is a disgrace, switching supplier #HausseDesPrix",
            "{b} blames inflation for the 30% price hike, nobody buys it",
        ],
    },
    "blackout": {
        "fr": [
            "Panne géante chez {b} : plus d'électricité dans tout le quartier depuis ce matin "
            "#Blackout",
            "Toujours pas de courant, {b} ne répond pas, panne générale #Blackout",
            "Coupure de courant {b} depuis 6 heures, frigo perdu #Blackout",
            "{b} en panne, 200 000 foyers sans électricité #Blackout",
            "Panne {b} : le service client annonce un retour du courant ce soir #Blackout",
        ],
        "en": [
            "Massive {b} blackout, no power in the whole area since this morning #Blackout",
            "Still no power, {b} is not answering, 200,000 homes in the dark #Blackout",
            "{b} power cut for 6 hours now, lost everything in the fridge #Blackout",
            "{b} blackout: support says power back tonight, we'll see",
        ],
    },
    # Shares words with data-leak on purpose ("clients", "comptes", customer accounts):
    # a harder case for grouping by words.
    "double-billing": {
        "fr": [
            "{b} a prélevé deux fois ses clients ce mois-ci, remboursez-nous "
            "#DoublePrélèvement",
            "Double prélèvement sur mon compte {b}, des milliers de clients touchés "
            "#DoublePrélèvement",
            "Prélevée deux fois par {b}, et le service client ne répond pas",
            "{b} reconnaît une erreur de prélèvement sur les comptes clients "
            "#DoublePrélèvement",
        ],
        "en": [
            "{b} charged customers twice this month, refund us #DoublePrélèvement",
            "Double charge on my {b} account, thousands of customers hit #DoublePrélèvement",
            "{b} admits a billing error on customer accounts, charged twice",
        ],
    },
}
# Bilingual storylines: the same three stories, each told in French and in English with
# no word, hashtag, name or figure in common between the two languages (only the brand):
# grouping by words alone splits each story in two; what joins them must be meaning.
# Within a language the paraphrases share a few key words, as real ones do.
BILINGUAL_STORYLINES: dict[str, dict[str, list[str]]] = {
    "leak-bilingual": {
        "fr": [
            "Piratage chez {b} : les coordonnées bancaires des abonnés dérobées par des "
            "pirates",
            "Des pirates ont dérobé les coordonnées bancaires de milliers d'abonnés {b}",
            "Mes coordonnées bancaires d'abonné {b} piratées ? On veut des réponses",
            "{b} cache le piratage des abonnés depuis des semaines, honteux",
            "Abonnés {b} : surveillez vos relevés, le piratage touche les coordonnées "
            "bancaires",
        ],
        "en": [
            "Hackers stole the card details of {b} subscribers",
            "{b} got hacked and subscribers' card details were stolen",
            "Were my card details stolen in the {b} hack? Subscribers deserve answers",
            "{b} hid the hack from subscribers for weeks, shameful",
            "Stolen card details at {b}: subscribers, watch your statements",
        ],
    },
    "prices-bilingual": {
        "fr": [
            "{b} augmente ses tarifs sans prévenir, la facture grimpe encore",
            "Encore une hausse des tarifs {b}, ma facture devient insupportable",
            "Facture {b} en hausse ce mois-ci, ces tarifs sont du vol",
            "{b} justifie la hausse des tarifs, personne n'y croit, facture salée",
            "Je résilie, la hausse des tarifs {b} a fait exploser ma facture",
        ],
        "en": [
            "{b} hiked its rates without warning, my bill went up again",
            "Another {b} rate hike, my monthly bill is getting unbearable",
            "My {b} bill is way up this month, these rates are robbery",
            "{b} blames someone else for the rate hike, nobody believes it, huge bill",
            "Quitting {b}, the rate hike made my bill skyrocket",
        ],
    },
    "outage-bilingual": {
        "fr": [
            "Panne {b} : plus de courant dans tout le quartier depuis ce matin",
            "Toujours pas de courant, panne {b} générale dans le quartier",
            "Coupure de courant {b}, panne depuis des heures, le congélateur a tout perdu",
            "Panne {b} interminable, le quartier est dans le noir",
            "{b} annonce un retour du courant ce soir, la panne dure depuis ce matin",
        ],
        "en": [
            "{b} outage: no power on our whole street since dawn",
            "Still no power here, the {b} outage hit the entire street",
            "Power down for hours in the {b} outage, everything in my freezer is ruined",
            "Endless {b} outage, our street is pitch dark",
            "{b} says power returns tonight, the outage started at dawn",
        ],
    },
}
STORYLINES.update(BILINGUAL_STORYLINES)
# The same stories told in one language only ("leak-bilingual:fr"): two different stories,
# one in each language, must stay two storylines.
STORYLINES.update({f"{name}:{language}": {language: script[language]}
                   for name, script in BILINGUAL_STORYLINES.items() for language in script})
BILINGUAL_MIX = tuple(BILINGUAL_STORYLINES)
DEFAULT_STORYLINES = ("data-leak", "price-rise", "blackout")
STORYLINE_WEIGHTS = (0.55, 0.3, 0.15)  # how a mixed wave splits between its storylines


@dataclass(frozen=True)
class BrandProfile:
    """What the generator needs to know of a brand."""

    id: str
    names: tuple[str, ...]           # how people write it: name and aliases
    hashtags: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    base_per_minute: float = 2.0     # average mentions per minute at the daily mean
    negative_share: float = 0.2
    positive_share: float = 0.3


@dataclass(frozen=True)
class Scenario:
    """A scripted incident: `kind` for `brand`, starting `start_minute` into the stream."""

    kind: str
    brand: str
    start_minute: float
    duration_minutes: float = 30.0
    peak_per_minute: float = 400.0
    # `mixed-wave` only: the scripted storylines (names in STORYLINES) and their weights.
    # `bilingual-wave` is a mixed wave of the BILINGUAL_STORYLINES (those default to it).
    storylines: tuple[str, ...] = DEFAULT_STORYLINES
    weights: tuple[float, ...] = STORYLINE_WEIGHTS

    KINDS = ("wikirevelation", "outage", "slow-burn", "praise", "mixed-wave", "bilingual-wave")
    MIXED = ("mixed-wave", "bilingual-wave")

    def story_names(self) -> tuple[str, ...]:
        if self.kind == "bilingual-wave" and self.storylines == DEFAULT_STORYLINES:
            return BILINGUAL_MIX
        return self.storylines


@dataclass
class Author:
    handle: str
    display_name: str
    followers: int
    verified: bool


def daily_rhythm(moment: datetime) -> float:
    """Relative activity by local hour: quiet at night, peaks at lunch and in the evening."""
    hour = moment.hour + moment.minute / 60
    lunch = math.exp(-((hour - 12.5) ** 2) / 4)
    evening = 1.2 * math.exp(-((hour - 20.5) ** 2) / 5)
    night = 0.15
    weekend = 0.8 if moment.weekday() >= 5 else 1.0
    return weekend * (night + lunch + evening) / 0.75


def scenario_rate(scenario: Scenario, minute: float) -> float:
    """Extra negative (or positive for praise) posts per minute at `minute` of the stream."""
    elapsed = minute - scenario.start_minute
    if elapsed < 0 or elapsed > scenario.duration_minutes:
        return 0.0
    peak = scenario.peak_per_minute
    if scenario.kind == "wikirevelation":
        # One post, then exponential spread (doubling about every 1.5 min) to the peak,
        # then a slow decay as the story saturates.
        rise = 12.0
        if elapsed < rise:
            return min(peak, 0.5 * 2 ** (elapsed / 1.5))
        return peak * math.exp(-(elapsed - rise) / (scenario.duration_minutes / 2))
    if scenario.kind in Scenario.MIXED:
        # Like a wikirévélation's rise, without its decay: each storyline keeps spreading.
        return min(peak, 0.5 * 2 ** (elapsed / 1.5)) if elapsed < 12 else peak
    if scenario.kind == "outage":
        return peak if elapsed < scenario.duration_minutes * 0.7 else peak * 0.3
    if scenario.kind == "slow-burn":
        return peak * elapsed / scenario.duration_minutes
    if scenario.kind == "praise":
        return peak * math.exp(-elapsed / (scenario.duration_minutes / 3))
    raise ValueError(f"unknown scenario kind {scenario.kind!r}")


@dataclass
class Generator:
    brands: list[BrandProfile]
    start: datetime
    seed: int = 7
    scenarios: list[Scenario] = field(default_factory=list)
    omit_language_share: float = 0.2  # some sources do not say the language
    reshare_share: float = 0.25
    # post key -> the scripted storyline it belongs to ("" for background chatter) and
    # its scripted sentiment; filled only when asked (for measuring storylines).
    record_truth: bool = False
    truth: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._next_id = 10_000_000
        self._authors = [self._make_author(i) for i in range(3000)]
        self._influencers = sorted(self._authors, key=lambda a: a.followers)[-40:]
        self._recent: dict[str, deque[dict[str, Any]]] = {b.id: deque(maxlen=200)
                                                        for b in self.brands}
        self._leak_roots: dict[tuple[str, float], dict[str, Any]] = {}
        for scenario in self.scenarios:
            if scenario.kind not in Scenario.KINDS:
                raise ValueError(
                    f"unknown scenario {scenario.kind!r}; choose from {', '.join(Scenario.KINDS)}"
                )
            if scenario.brand not in {b.id for b in self.brands}:
                raise ValueError(f"scenario {scenario.kind}: unknown brand {scenario.brand!r}")
            unknown = [name for name in scenario.story_names() if name not in STORYLINES]
            if unknown or len(scenario.weights) < len(scenario.story_names()):
                raise ValueError(f"scenario {scenario.kind}: unknown storyline(s) {unknown} or "
                                 "fewer weights than storylines")
        self._story_roots: dict[tuple[str, float, str], dict[str, Any]] = {}

    def _make_author(self, index: int) -> Author:
        # Pareto audiences: most accounts have a few hundred followers, a few have millions.
        followers = int(min(5_000_000, 40 * self.rng.paretovariate(1.1)))
        first = self.rng.choice(["camille", "lea", "hugo", "nora", "sam", "alex", "jules",
                                 "emma", "noah", "ines", "tom", "sarah", "yanis", "zoe"])
        handle = f"{first}{index}"
        return Author(handle, first.capitalize() + f" {index}", followers,
                      verified=followers > 200_000)

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _brand_word(self, brand: BrandProfile) -> str:
        roll = self.rng.random()
        if roll < 0.12 and brand.hashtags:
            return self.rng.choice(brand.hashtags)
        if roll < 0.2 and brand.handles:
            return self.rng.choice(brand.handles)
        word = self.rng.choice(brand.names)
        case = self.rng.random()
        return word.lower() if case < 0.15 else word.upper() if case < 0.2 else word

    def _post(self, brand: BrandProfile, moment: datetime, text: str, language: str,
              author: Author, platform: str | None = None,
              reshare_of: dict[str, Any] | None = None) -> dict[str, Any]:
        platform = platform or self.rng.choices(
            list(PLATFORM_WEIGHTS), weights=list(PLATFORM_WEIGHTS.values()))[0]
        post_id = self._new_id()
        post: dict[str, Any] = {
            "schema_version": 1,
            "platform": platform,
            "id": post_id,
            "url": PLATFORM_URLS[platform].format(handle=author.handle, id=post_id),
            "author": {"handle": author.handle, "display_name": author.display_name,
                       "followers": author.followers, "verified": author.verified},
            "text": text,
            "created_at": moment.isoformat(),
            "reply_to": None,
            "reshare_of": None,
            "quote_of": None,
            "engagement": {"likes": self.rng.randint(0, 30), "reshares": self.rng.randint(0, 5),
                           "replies": self.rng.randint(0, 5), "quotes": 0,
                           "views": author.followers // 10},
        }
        if reshare_of is not None:
            post["reshare_of"] = f"{reshare_of['platform']}:{reshare_of['id']}"
            post["platform"] = reshare_of["platform"]
            post["url"] = PLATFORM_URLS[post["platform"]].format(handle=author.handle, id=post_id)
        if self.rng.random() >= self.omit_language_share:
            post["language"] = language
        self._recent[brand.id].append(post)
        return post

    def _background(self, brand: BrandProfile, moment: datetime) -> dict[str, Any]:
        recent = self._recent[brand.id]
        # Influencers speak about brands too, now and then.
        author = self.rng.choice(self._influencers if self.rng.random() < 0.02
                                 else self._authors)
        if recent and self.rng.random() < self.reshare_share:
            original = self.rng.choice(recent)
            post = self._post(brand, moment, original["text"], original.get("language", "fr"),
                              author, reshare_of=original)
            self._remember(post, "", "neutral")
            return post
        roll = self.rng.random()
        sentiment = ("negative" if roll < brand.negative_share else
                     "positive" if roll < brand.negative_share + brand.positive_share else
                     "neutral")
        language = "fr" if self.rng.random() < 0.6 else "en"
        template = self.rng.choice(TEMPLATES[language][sentiment])
        post = self._post(brand, moment, template.format(b=self._brand_word(brand)),
                          language, author)
        self._remember(post, "", sentiment)
        return post

    def _remember(self, post: dict[str, Any], storyline: str, sentiment: str) -> None:
        if self.record_truth:
            key = f"{post['platform']}:{post['id']}"
            original = post.get("reshare_of")
            # A reshare belongs where its original does.
            self.truth[key] = self.truth.get(original, (storyline, sentiment)) if original \
                else (storyline, sentiment)

    def _storyline_post(self, scenario: Scenario, brand: BrandProfile,
                        moment: datetime) -> dict[str, Any]:
        """One post of a mixed wave: an original, a reshare of it, or a paraphrase."""
        names = scenario.story_names()
        name = self.rng.choices(names, weights=scenario.weights[: len(names)])[0]
        script = STORYLINES[name]
        key = (scenario.brand, scenario.start_minute, name)
        root = self._story_roots.get(key)
        author = (self.rng.choice(self._influencers) if self.rng.random() < 0.05
                  else self.rng.choice(self._authors))
        languages = [language for language in ("fr", "en") if script.get(language)]
        if root is None:
            text = script[languages[0]][0].format(b=brand.names[0])
            root = self._post(brand, moment, text, languages[0],
                              self.rng.choice(self._authors[:500]), platform="twitter")
            self._story_roots[key] = root
            self._remember(root, name, "negative")
            return root
        if self.rng.random() < 0.4:
            post = self._post(brand, moment, root["text"], languages[0], author,
                              reshare_of=root)
        else:
            language = languages[0] if len(languages) == 1 or self.rng.random() < 0.6 \
                else languages[1]
            text = self.rng.choice(script[language]).format(b=self._brand_word(brand))
            post = self._post(brand, moment, text, language, author)
        self._remember(post, name, "negative")
        return post

    def _incident_post(self, scenario: Scenario, brand: BrandProfile,
                       moment: datetime) -> dict[str, Any]:
        key = (scenario.brand, scenario.start_minute)
        if scenario.kind in Scenario.MIXED:
            return self._storyline_post(scenario, brand, moment)
        if scenario.kind == "praise":
            language = "fr" if self.rng.random() < 0.6 else "en"
            template = self.rng.choice(TEMPLATES[language]["positive"])
            return self._post(brand, moment, template.format(b=self._brand_word(brand)),
                              language, self.rng.choice(self._authors))
        if scenario.kind in ("outage", "slow-burn"):
            language = "fr" if self.rng.random() < 0.6 else "en"
            template = self.rng.choice(TEMPLATES[language]["negative"])
            return self._post(brand, moment, template.format(b=self._brand_word(brand)),
                              language, self.rng.choice(self._authors))
        # wikirévélation: a root post by one account, then reshares and new posts,
        # influencers joining early.
        tag = f"{brand.names[0].split()[0]}Leaks"
        root = self._leak_roots.get(key)
        if root is None:
            author = self.rng.choice(self._authors[:500])
            text = LEAK_TEMPLATES["fr"][0].format(b=brand.names[0], tag=tag)
            root = self._post(brand, moment, text, "fr", author, platform="twitter")
            self._leak_roots[key] = root
            return root
        author = (self.rng.choice(self._influencers) if self.rng.random() < 0.05
                  else self.rng.choice(self._authors))
        if self.rng.random() < 0.45:
            return self._post(brand, moment, root["text"], "fr", author, reshare_of=root)
        language = "fr" if self.rng.random() < 0.65 else "en"
        text = self.rng.choice(LEAK_TEMPLATES[language]).format(b=self._brand_word(brand),
                                                                tag=tag)
        return self._post(brand, moment, text, language, author)

    def posts(self, minutes: float) -> Iterator[dict[str, Any]]:
        """Posts in created_at order over `minutes` of simulated time."""
        by_id = {b.id: b for b in self.brands}
        for minute in range(int(math.ceil(minutes))):
            minute_start = self.start + timedelta(minutes=minute)
            batch: list[tuple[float, BrandProfile, Scenario | None]] = []
            for brand in self.brands:
                expected = brand.base_per_minute * daily_rhythm(minute_start)
                for _ in range(self._poisson(expected)):
                    batch.append((self.rng.random(), brand, None))
            for scenario in self.scenarios:
                extra = scenario_rate(scenario, minute + 0.5)
                if extra > 0 and (scenario.brand, scenario.start_minute) not in self._leak_roots \
                        and scenario.kind == "wikirevelation":
                    extra = max(extra, 1.0)  # the leak always starts with its root post
                for _ in range(self._poisson(extra)):
                    batch.append((self.rng.random(), by_id[scenario.brand], scenario))
            batch.sort(key=lambda item: item[0])
            for offset, brand, scenario in batch:
                moment = minute_start + timedelta(seconds=offset * 60)
                if scenario is None:
                    yield self._background(brand, moment)
                    continue
                post = self._incident_post(scenario, brand, moment)
                if scenario.kind not in Scenario.MIXED:
                    self._remember(post, scenario.kind,
                                   "positive" if scenario.kind == "praise" else "negative")
                yield post

    def _poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 50:  # normal approximation: fast for crisis peaks
            return max(0, int(round(self.rng.gauss(mean, math.sqrt(mean)))))
        limit, count, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count
