"""Which messages are sensitive: news of a death, illness, injury, an accident, danger, a
breakup, a lost job, a failed exam, a pet's death, anxiety or other distress.

Such a message never gets a humorous, dismissive or cheerful suggestion: only replies of a
``sympathetic`` intent, or none (docs/DESIGN "Tone"; models.suggester applies it). The
detector runs on every request, so it is cheap: a lexicon of distress words and phrases (a
few regular expressions), and the encoder embedding the suggester has computed already,
compared with a few prototype messages (a dot product with two small matrices).

Two signals, either of which marks a message sensitive:

1. **Lexicon** (:data:`DISTRESS`): words and phrases of loss, illness, injury, danger,
   breakups, lost jobs, failed exams and distress, matched on the casefolded message after
   removing the idioms that only sound sad (:data:`IDIOMS`: "dying to", "killing me",
   "my phone died", "died laughing", "dead tired", "sick of"...).
2. **Encoder**: the message's cosine to the nearest of :data:`DISTRESS_PROTOTYPES` is at
   least ``floor`` and exceeds its cosine to the nearest of :data:`EVERYDAY_PROTOTYPES`
   (idioms, good news, small mishaps) by at least ``margin``: a nearest-prototype rule, so
   a message phrased unlike any lexicon entry ("she didn't make it") is still caught, and
   one that merely shares words with sad news ("the surgery went well") is not.
   A model trained with a catalogue replaces this rule by a classifier (:class:`ToneClassifier`:
   a logistic regression on the embedding, trained on the catalogue's prompts, the bad news
   its sympathetic intents answer against everything its other intents answer, with the
   prototypes and the packaged examples of ``models/tone_examples.tsv``): on messages
   written apart from everything here (``tests/data/tone_heldout.tsv``, 240) it finds 0.84
   of the sad news where the rule found 0.66, at precision 0.84 against 0.82
   (docs/benchmarks.md, "Tone classifier" and "Tone examples").

The prototypes are written apart from the evaluation messages (``tests/data/
tone_messages.tsv``: 162 everyday messages, 75 sensitive); ``bench/tone_detector.py``
measures each signal and their union there and the figures are in docs/benchmarks.md
("Tone"), with the defaults of :class:`ToneConfig` chosen from them. A lexicon-based
sentiment analyser (VADER, in the ``vaderSentiment`` package) was measured beside them and
not adopted: docs/benchmarks.md says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from models.encoder import Encoder

# What the classifier learns from besides the catalogue's prompts (tone_examples).
TONE_EXAMPLES_FILE = "tone_examples.tsv"

# The classifier's probability at or above which a message is sensitive (ToneClassifier).
CLASSIFIER_THRESHOLD = 0.85

# The classifier's probability at or above which a message it does not call sensitive may
# still be sad news, and gets no suggestion: "we lost the baby" (0.56 on the demo model), "my
# marriage is over" (0.81). At 0.70, on the demo model: sad news caught or kept silent 0.87
# of the everyday benchmark's (0.81 without), 0.84 of tests/data/tone_heldout.tsv's (0.79);
# everyday messages left without a suggestion 6.5% and 23% (3.7% and 18%); chosen on those
# sets, which were read before (docs/benchmarks.md "Unsure: silence").
UNSURE_THRESHOLD = 0.70

# The cosine to the intent's nearest prompt (models.prompts.IntentMatch.nearest; the intent
# signal itself is the prototype's) a sensitive message needs before a sympathetic intent
# that is not ``general``
# (models.catalogue.Intent) may answer it. Chosen on the catalogue's prompts, not on the
# benchmark: at 0.70, 0.8% of the prompts of the other sympathetic intents come this close
# to an intent's prompts (`python -m bench.prompt_thresholds`, docs/benchmarks.md "Which
# sympathy"); the prompts of one intent are written to differ, so its own rarely do.
SPECIFIC_SYMPATHY_MATCH = 0.70

# Idioms that sound like distress and are not; removed before the lexicon is matched.
IDIOMS = tuple(
    re.compile(p)
    for p in (
        r"\bdying (to|for)\b",
        r"\b(kill|kills|killing|killed) me\b",
        r"\bkill(ed|ing)? it\b",
        r"\b(would|could|'d) (kill|murder) (for )?\b",
        r"\bdied (of |from )?laugh\w*",
        r"\bdead (tired|serious|funny|on|ass)\b",
        r"\b(sick|tired) of\b",
        r"\b(is|was|looks|so) sick\b(?! (of|with|in|and))",
        r"\bdeath of me\b",
        r"\bbreak a leg\b",
        r"\bscared of (spiders|heights|the dark|clowns|snakes|bugs)\b",
        r"\bfailed to\b",
        r"\bcrying (laughing|of laughter|with laughter)\b",
        r"\bstroke of (luck|genius)\b",
        r"\b(phone|battery|laptop|wifi|wi-fi|car|computer|tablet|charger|tv|plants?|"
        r"batteries|printer|internet|router|headphones|game|console|server|app|flowers)"
        r"\b[\w' ]{0,24}?\b(died|dies|dead|dying|broke down|crashed|is broken|broke)\b",
        r"\b(died|dead|dying)\b[\w' ]{0,12}\b(phone|battery|laptop|wifi|car|computer)\b",
        r"\bbroke (until|till|af|lol)\b",
        r"\bi'?m (so |totally |flat )?broke\b",
    )
)

# Words and phrases of distress, matched after IDIOMS are removed.
DISTRESS = re.compile(
    r"\b("
    # death
    r"pass(ed|es|ing)? away|passed on|died|dies|dying|dead|death|deceased|funeral|"
    r"killed|suicide|took (his|her|their|my) own life|didn'?t make it|lost (my |our |his |her |the )?"
    r"(mom|mum|dad|father|mother|son|daughter|husband|wife|brother|sister|grandma|grandpa|"
    r"grandmother|grandfather|grandad|granddad|nan|nanna|gran|aunt|uncle|cousin|friend|baby|"
    r"dog|cat|pet|horse)|"
    r"put (him|her|it|our \w+|my \w+) (down|to sleep)|(be|been|was|were) put (down|to sleep)|"
    r"rest in peace|rip(?= \w+,)|couldn'?t save|"
    # illness
    r"cancer|tumou?r|chemo(therapy)?|biopsy|diagnos(ed|is)|terminal|heart attack|stroke|"
    r"seizure|icu|intensive care|hospital|hospitali[sz]ed|emergency room|ambulance|"
    r"positive for|covid|flu|sick|(feel|feeling|felt|been|so|very|really) ill|fever|"
    r"pneumonia|infection|surgery|operation|the op|a ?& ?e|on the ward|antibiotics|"
    r"throwing up|vomit(ing)?|(sick|vomiting|stomach|tummy) bug|food poisoning|migraine|"
    r"(high )?temperature of|chicken ?pox|measles|poorly|unwell|feel(ing)? (really |so )?rough|"
    r"signed off|"
    r"life support|coma|dementia|alzheimer'?s|miscarr(y|ied|iage)|"
    # injury, accident, danger
    r"(broke|broken|fractured|sprained|twisted|dislocated) (my|his|her|their|a|an)? ?"
    r"(arm|leg|wrist|ankle|foot|hand|back|neck|nose|ribs?|hip|collarbone|finger|toe|knee)|"
    r"injur(ed|y|ies)|concussion|stitches|bleeding|hurt (my|his|her)|"
    r"knocked (off|over|down)|fell off|(burnt|burned|scalded) (my|his|her)|"
    r"(tore|torn) (my|his|her)|whiplash|"
    r"accident|crash(ed)?|rear-ended|hit by a car|"
    r"(a|the|house) fire|caught fire|flood(ed|ing)?|earthquake|hurricane|tornado|"
    r"evacuat(e|ed|ing)|shooting|(got|been|was) shot|stabbed|attacked|assaulted|mugged|"
    r"robbed|stolen|broke into|break in|burgl(ed|ary|ars?)|knife|gun|"
    r"following me|stalk(ed|ing|er)|threaten(ed|ing)|"
    # breakup, job, exams
    r"broke up|break ?up|broken up|divorce[ds]?|divorcing|separated|split up|dumped|"
    r"cheated on|cheating|left me|ended (it|things)|"
    r"laid off|laying off|lay ?offs?|fired|lost (my|his|her) job|out of work|unemployed|"
    r"evicted|eviction|bankrupt|can'?t afford|losing the house|"
    r"failed|flunked|didn'?t pass|rejected|"
    # distress
    r"panic attacks?|depressed|depression|anxious|anxiety|can'?t stop crying|crying|"
    r"so alone|lonely|scared|terrified|afraid|worried|stressed|overwhelmed|hopeless|"
    r"falling apart|can'?t do this anymore|can'?t cope|heartbroken|devastated|grieving|"
    r"stranded|miss (him|her) so much"
    r")\b"
)

# Messages the encoder should find close to sensitive ones (not the evaluation's messages),
# each with the sympathetic catalogue intents that answer it well: for a sensitive message
# the nearest prototypes vote for their intents as the nearest training messages vote for
# their replies (models.suggester), so a breakup gets "I'm here for you", not "Rest up".
DISTRESS_REPLIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "my grandmother passed away yesterday",
        ("sorry_for_your_loss", "condolences", "thinking_of_you"),
    ),
    ("my father died this morning", ("sorry_for_your_loss", "condolences", "here_for_you")),
    ("we lost our baby", ("sorry_for_your_loss", "here_for_you", "sending_love")),
    ("my friend was killed in an accident", ("sorry_for_your_loss", "thats_awful", "here_for_you")),
    (
        "the doctor told me I have a serious illness",
        ("sorry_to_hear", "here_for_you", "sending_love"),
    ),
    ("my mother is very sick in hospital", ("sorry_to_hear", "thinking_of_you", "need_anything")),
    ("he is in intensive care", ("thinking_of_you", "sending_love", "here_for_you")),
    (
        "I was badly hurt and ended up in the emergency room",
        ("oh_no", "are_you_ok", "get_well_soon"),
    ),
    ("I had a bad fall and broke my wrist", ("oh_no", "get_well_soon", "rest_up")),
    ("I have a terrible flu", ("get_well_soon", "rest_up", "feeling_better_question")),
    ("we were in a terrible crash on the motorway", ("are_you_ok", "oh_no", "what_happened")),
    ("our home burned down", ("thats_awful", "are_you_ok", "need_anything")),
    ("a man attacked me in the street", ("are_you_ok", "thats_awful", "stay_safe")),
    ("I am in danger and scared", ("stay_safe", "are_you_ok", "here_for_you")),
    (
        "my partner ended our relationship",
        ("sorry_to_hear", "here_for_you", "you_deserve_better"),
    ),
    ("my husband wants a divorce", ("sorry_to_hear", "here_for_you", "want_to_talk")),
    ("I was let go from my job", ("sorry_to_hear", "thats_awful", "it_will_get_better")),
    (
        "I am unemployed and can't pay the bills",
        ("sounds_hard", "need_anything", "it_will_get_better"),
    ),
    (
        "I failed an important exam and feel terrible",
        ("sorry_to_hear", "oh_no", "it_will_get_better"),
    ),
    ("our old dog passed away", ("sorry_for_your_loss", "sorry_to_hear", "sending_love")),
    (
        "we had to say goodbye to our cat",
        ("sorry_for_your_loss", "sending_love", "thinking_of_you"),
    ),
    ("I feel hopeless and sad all the time", ("here_for_you", "want_to_talk", "sounds_hard")),
    ("I keep having panic attacks", ("here_for_you", "want_to_talk", "take_care_of_yourself")),
    ("I am so anxious I can't breathe", ("here_for_you", "are_you_ok", "take_care_of_yourself")),
    ("I'm going through a really hard time", ("here_for_you", "want_to_talk", "sounds_hard")),
    ("everything went wrong and I'm devastated", ("sorry_to_hear", "here_for_you", "sounds_hard")),
    ("I feel like giving up", ("here_for_you", "want_to_talk", "it_will_get_better")),
    ("I am grieving", ("thinking_of_you", "here_for_you", "take_all_the_time")),
    (
        "bad news, the results came back and it's not good",
        ("sorry_to_hear", "here_for_you", "thinking_of_you"),
    ),
)
DISTRESS_PROTOTYPES = tuple(message for message, _ in DISTRESS_REPLIES)


# Everyday messages that share words with sad news, or good news, or small mishaps.
EVERYDAY_PROTOTYPES = (
    "I'm dying to try that new restaurant",
    "these shoes are killing my feet",
    "my battery is about to die",
    "my computer crashed and I lost my essay",
    "you absolutely killed that presentation",
    "I nearly died of laughter",
    "I'm sick of this rain",
    "that concert was sick",
    "I'm so broke this month haha",
    "I aced my exam!",
    "I passed all my exams, so happy",
    "I got a new job!",
    "we just got engaged",
    "the operation went fine and she's home",
    "he's feeling much better now",
    "running late, stuck in traffic",
    "I missed my train",
    "I forgot my umbrella",
    "I lost my phone charger",
    "our team lost again",
    "the movie had a really sad ending",
    "what a boring day",
    "I'm tired after work",
    "haha you're so funny",
    "see you at dinner",
    "thanks for everything",
    "good morning, how are you?",
    "I love this weather",
    "I'm going to the doctor for my annual checkup",
)


@dataclass(frozen=True)
class ToneConfig:
    """The encoder rule's two numbers (docs/benchmarks.md "Tone" gives the measurement).

    Attributes:
        floor: the least cosine to the nearest distress prototype.
        margin: how much nearer the nearest distress prototype must be than the nearest
            everyday one.
        veto: a lexicon hit does not count when the message is nearer the nearest everyday
            prototype than the nearest distress one by at least this much ("the movie was
            about a man whose wife died"); None: never vetoed.
        use_lexicon: whether the lexicon marks messages (off: the encoder alone).
        use_encoder: whether the encoder rule marks messages (off: the lexicon alone).
    """

    floor: float = 0.55
    margin: float = 0.05
    veto: float | None = 0.2
    use_lexicon: bool = True
    use_encoder: bool = True


@dataclass(frozen=True)
class Sensitivity:
    """Why a message is or is not sensitive.

    Attributes:
        sensitive: whether only sympathetic replies may answer it.
        lexicon: the distress word or phrase found, or None.
        distress: cosine to the nearest distress prototype (0 without an embedding).
        everyday: cosine to the nearest everyday prototype (0 without an embedding).
        unsure: not sensitive, but it may be sad news (the classifier's probability is at
            least :data:`UNSURE_THRESHOLD`): no suggestion suits both readings, so none is
            given.
    """

    sensitive: bool
    lexicon: str | None
    distress: float
    everyday: float
    unsure: bool = False


def tone_examples() -> tuple[list[str], np.ndarray, list[str]]:
    """The packaged examples of sad news and everyday messages (``models/tone_examples.tsv``,
    whose header says who wrote them and how they are kept apart from the evaluation sets).

    Returns:
        The messages; (n,) bool, whether each is sad news; and each one's kind (death,
        hospital_logistics, idioms_that_sound_sad...).
    """
    text = resources.files("models").joinpath(TONE_EXAMPLES_FILE).read_text(encoding="utf-8")
    rows = [
        line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    sad = np.asarray([label == "1" for label, _, _ in rows], dtype=bool)
    return [message for _, _, message in rows], sad, [kind for _, kind, _ in rows]


def lexicon_hit(message: str) -> str | None:
    """The distress word or phrase of ``message`` (idioms removed first), or None."""
    text = message.casefold().replace("’", "'")
    for idiom in IDIOMS:
        text = idiom.sub(" ", text)
    found = DISTRESS.search(text)
    return found.group(0) if found else None


class ToneDetector:
    """Tells sensitive messages apart, from the message and its encoder embedding.

    Example:
        >>> detector = ToneDetector(encoder)  # doctest: +SKIP
        >>> detector.detect("my grandma passed away", encoder.encode(["..."])[0]).sensitive
        True
    """

    def __init__(
        self,
        encoder: Encoder,
        config: ToneConfig | None = None,
        classifier: ToneClassifier | None = None,
    ) -> None:
        """Encode the prototypes once (the encoder caches them: a second model over the
        same encoder encodes nothing).

        Args:
            encoder: encodes the prototypes.
            config: the rule's numbers.
            classifier: the model's classifier (trained on its catalogue's prompts), which
                replaces the nearest-prototype encoder rule; None (a model trained before
                it) keeps that rule.

        Raises:
            models.encoder.EncoderError: the encoder cannot encode.
        """
        self.config = config or ToneConfig()
        self.classifier = classifier
        self.distress = encoder.encode(list(DISTRESS_PROTOTYPES))
        self.everyday = encoder.encode(list(EVERYDAY_PROTOTYPES))
        # Each distress prototype's sympathetic intents (DISTRESS_REPLIES).
        self.replies = tuple(intents for _, intents in DISTRESS_REPLIES)

    def prototype_votes(self, embedding: np.ndarray, temperature: float) -> np.ndarray:
        """What the distress prototypes say about a sensitive message, as the nearest
        training messages do in the suggester's nearest-message signal: each prototype's
        share of the votes (softmax of its cosine at ``temperature``) times the cosine of
        the nearest prototype.

        Args:
            embedding: (d,) float32, unit norm: the message's encoder embedding.
            temperature: the nearest-message signal's (models.suggester.ScoringWeights).

        Returns:
            (p,) float64 in [0, 1]: each prototype's vote, in :data:`DISTRESS_REPLIES`'s
            order (it goes to every intent listed beside that prototype).
        """
        sims = self.distress @ embedding
        votes = np.exp((sims.astype(np.float64) - 1.0) / temperature)
        nearest = max(float(sims.max()), 0.0)
        return np.asarray(votes / max(float(votes.sum()), 1e-12) * nearest)

    def detect(self, message: str, embedding: np.ndarray | None) -> Sensitivity:
        """Whether ``message`` is sensitive.

        Args:
            message: the message as the client sent it.
            embedding: (d,) float32, unit norm: the encoder's embedding of ``message`` (the
                suggester's, not the adapted one), or None for the lexicon alone.
        """
        hit = lexicon_hit(message) if self.config.use_lexicon else None
        distress = everyday = 0.0
        if embedding is not None:
            distress = float((self.distress @ embedding).max())
            everyday = float((self.everyday @ embedding).max())
        if (
            hit is not None
            and embedding is not None
            and self.config.veto is not None
            and everyday - distress >= self.config.veto
        ):
            hit = None
        unsure = False
        if self.classifier is not None and embedding is not None:
            probability = float(self.classifier.probability(embedding))
            close = self.config.use_encoder and probability >= self.classifier.threshold
            unsure = self.config.use_encoder and probability >= UNSURE_THRESHOLD
        else:
            close = (
                self.config.use_encoder
                and embedding is not None
                and distress >= self.config.floor
                and distress - everyday >= self.config.margin
            )
        sensitive = hit is not None or close
        return Sensitivity(sensitive, hit, distress, everyday, unsure and not sensitive)

    def sensitive_many(self, messages: list[str], embeddings: np.ndarray) -> np.ndarray:
        """(n,) bool: :meth:`detect` for each message; ``embeddings`` is (n, d)."""
        return self.judge_many(messages, embeddings)[0]

    def judge_many(
        self, messages: list[str], embeddings: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n,) bool each: whether each message is sensitive, and whether it is unsure
        (:class:`Sensitivity`); ``embeddings`` is (n, d)."""
        judged = [self.detect(m, e) for m, e in zip(messages, embeddings, strict=True)]
        return (
            np.asarray([j.sensitive for j in judged], dtype=bool),
            np.asarray([j.unsure for j in judged], dtype=bool),
        )


@dataclass(frozen=True)
class ToneClassifier:
    """A logistic regression on encoder embeddings: is a message news a sympathetic intent
    answers? Trained with each model (:meth:`fit`), applied with numpy alone (no
    scikit-learn in a web process).

    Attributes:
        coef: (d,) float64, the weights.
        intercept: the bias.
        threshold: the least probability that marks a message sensitive.
    """

    coef: np.ndarray
    intercept: float
    threshold: float = CLASSIFIER_THRESHOLD

    def probability(self, embeddings: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1] for (n, d) unit rows (or a (d,) row: a 0-d array)."""
        return np.asarray(1.0 / (1.0 + np.exp(-(embeddings @ self.coef + self.intercept))))

    def sensitive(self, embedding: np.ndarray) -> bool:
        return bool(self.probability(embedding) >= self.threshold)

    def to_dict(self) -> dict[str, object]:
        return {
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ToneClassifier:
        return cls(
            np.asarray(data["coef"], dtype=np.float64),
            float(data["intercept"]),  # type: ignore[arg-type]
            float(data["threshold"]),  # type: ignore[arg-type]
        )

    @classmethod
    def fit(
        cls, encoder: Encoder, embeddings: np.ndarray, sympathetic: np.ndarray
    ) -> ToneClassifier:
        """Train on a catalogue's prompts and the prototypes of this module.

        Args:
            encoder: encodes the prototypes.
            embeddings: (p, d) unit rows, the prompts' embeddings (models.prompts).
            sympathetic: (p,) bool, whether each prompt is of a sympathetic intent (the bad
                news those intents answer) or not.

        Besides the prompts and the prototypes it learns from the packaged examples
        (:func:`tone_examples`, 994 messages, half of them sad news, much of it sad only
        implicitly). scikit-learn's LogisticRegression (C=4, balanced classes) and the
        threshold 0.85 were chosen on tests/data/tone_messages.tsv and the everyday
        benchmark's sensitive labels before the examples existed, and kept; on
        tests/data/tone_heldout.tsv, which nobody tuned on, the examples took precision
        0.819 -> 0.842, recall 0.792 -> 0.842, and sad news caught or kept silent 0.842 ->
        0.925 (docs/benchmarks.md "Tone examples").
        """
        # Imported here: only a training process fits (scikit-learn is not served).
        from sklearn.linear_model import LogisticRegression

        texts, sad, _ = tone_examples()
        features = np.vstack(
            [
                embeddings,
                encoder.encode(list(DISTRESS_PROTOTYPES)),
                encoder.encode(list(EVERYDAY_PROTOTYPES)),
                encoder.encode(texts),
            ]
        )
        labels = np.concatenate(
            [
                np.asarray(sympathetic, dtype=bool),
                np.ones(len(DISTRESS_PROTOTYPES), dtype=bool),
                np.zeros(len(EVERYDAY_PROTOTYPES), dtype=bool),
                sad,
            ]
        )
        fitted = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
        fitted.fit(features, labels)
        return cls(fitted.coef_[0].astype(np.float64), float(fitted.intercept_[0]))
