"""Terms: what each player's objective is a sum of, and the state a term keeps.

D's objective and G's objective are each a sum of terms: the adversarial loss, the class
loss of a conditional D, the regularisers. A term is a pure function of what it sees,

    term.fn(view, state) -> TermResult(value, state, metrics)

where `view` (a `DView` or `GView`) holds D's raw outputs on the main batch, the real and
generated batches, D (or G) as a function of the parameters being differentiated, the
term's per-example keys and the step, and `state` is the term's own (a pytree, None
for a term without any). The step (gan_jax/step.py) sums the values in order and names
no term: what a run optimises is the list of terms its parts contribute.

A term's `kind` says where its value is logged: "loss" terms add up to `d_loss` / `g_loss`,
"regulariser" terms to `d_penalty` / `g_penalty` and each to `<player>_<name>`; a
"monitor" term adds nothing to the objective: it keeps state from what the player sees
(ADA's controller, which adapts its p from D's outputs on real data). Its
`metrics` are logged as `<name>_<key>`. With `interval` N > 1 it is lazy (Karras et al.
2020, Appendix B): it runs in a phase of its own on iterations 0, N, 2N, ..., its value
multiplied by N, with its own optimiser step (the player's Adam rescaled, gan_jax/optim.py).

A term's state starts at `init()`, travels in the training state (`GANState.terms[name]`),
is checkpointed with it, stacked per replica in a population, and averaged over the
devices after each update when `mean_state` (a moving average of D's outputs is the
average of the devices' averages; a counter is not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax

DISCRIMINATOR = "discriminator"
GENERATOR = "generator"
PLAYERS = (DISCRIMINATOR, GENERATOR)
KINDS = ("loss", "regulariser", "monitor")


@dataclass(frozen=True)
class TermResult:
    value: jax.Array  # a scalar added to the player's objective
    state: Any = None  # the term's new state (None: it has none)
    metrics: dict[str, jax.Array] = field(default_factory=dict)  # logged as <term name>_<key>


@dataclass(frozen=True)
class DView:
    """What a discriminator term sees in one D update (all on this device's share).

    real_out, fake_out: D's raw adversarial outputs [n, 1] on the main batch (for a packed D,
        one per pack); real_classes, fake_classes: an ACGAN D's class logits, else None.
    real, fake: the examples D judged (augmented, when augmentation is on); real_plain,
        fake_plain: the same before augmentation.
    real_labels, fake_labels: their classes (None: unconditional).
    d: (x, labels) -> D's raw adversarial outputs, with the parameters being differentiated
        (gradient penalties differentiate it with respect to x).
    augment: (images, per-example keys) -> augmented images; None without augmentation.
    keys: one PRNG key per example for this term; step: the iteration (int32 scalar).
    mean_over_devices: the mean of a value over the devices sharing the batch (identity on
        one), for a term whose state must not depend on how the batch is split.
    latent: the latents of the generated batch; generate: (latent, labels) -> G's samples,
        G fixed (zCR compares D on G's samples of perturbed latents).
    settings: the iteration's values of the settings that vary (a schedule's, a population
        member's: {"penalty.r1.weight": ..., "loss.name": index}); a term reads its own there.
    In a lazy phase D's main outputs are not computed: real_out and fake_out are None.
    """

    real_out: Any
    fake_out: Any
    real_classes: jax.Array | None
    fake_classes: jax.Array | None
    real: jax.Array
    fake: jax.Array
    real_plain: jax.Array
    fake_plain: jax.Array
    real_labels: jax.Array | None
    fake_labels: jax.Array | None
    d: Callable[[jax.Array, jax.Array | None], jax.Array]
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None
    keys: jax.Array
    step: jax.Array
    mean_over_devices: Callable[[Any], Any]
    latent: Any = None
    generate: Callable[[jax.Array, jax.Array | None], jax.Array] | None = None
    settings: Any = field(default_factory=dict)


@dataclass(frozen=True)
class GView:
    """What a generator term sees in one G update.

    fake_out, real_out: D's raw adversarial outputs [n, 1] on G's samples and on a real batch;
        fake_classes: an ACGAN D's class logits on G's samples, else None.
    fake: G's samples (augmented when augmentation is on); latent, labels: what made them.
    params: G's parameters being differentiated (BigGAN's orthogonal penalty reads them).
    generate: (latent, labels) -> samples, a function of `params`.
    apply_generator: (method name, *args, labels=..., **kwargs) -> output: any method the generator
        module exposes, with `params` (a model that exposes its intermediate latents, e.g.
        `map_latents` and `synthesise`, lets a term differentiate with respect to them).
    discriminate: (x, labels) -> D's raw adversarial outputs (the opponent's, fixed).
    keys: one PRNG key per example for this term; step: the iteration; mean_over_devices
        and settings as DView's. In a lazy phase D's outputs are not computed: fake_out, real_out and
        fake_classes are None, and fake is G's sample of `latent`.
    """

    fake_out: Any
    real_out: Any
    fake_classes: jax.Array | None
    fake: jax.Array
    latent: jax.Array
    labels: jax.Array | None
    params: Any
    generate: Callable[[jax.Array, jax.Array | None], jax.Array]
    apply_generator: Callable[..., Any]
    discriminate: Callable[[jax.Array, jax.Array | None], jax.Array]
    keys: jax.Array
    step: jax.Array
    mean_over_devices: Callable[[Any], Any]
    settings: Any = field(default_factory=dict)


@dataclass(frozen=True)
class Term:
    """One summand of a player's objective; `fn(view, state) -> TermResult`."""

    name: str  # unique in a run; its state is GANState.terms[name]
    player: str  # DISCRIMINATOR or GENERATOR
    fn: Callable[[Any, Any], TermResult]
    kind: str = "regulariser"  # or "loss": counted in d_loss / g_loss; "monitor": state and metrics only
    interval: int = 1  # > 1: lazy, a phase of its own every `interval` iterations, scaled by it
    init: Callable[[], Any] | None = None  # the state's initial value; None: no state
    mean_state: bool = True  # average the new state over the devices

    def __post_init__(self) -> None:
        if self.player not in PLAYERS:
            raise ValueError(f"term {self.name!r}: player must be one of {PLAYERS}, not {self.player!r}")
        if self.kind not in KINDS:
            raise ValueError(f"term {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.interval < 1:
            raise ValueError(f"term {self.name!r}: interval must be >= 1, not {self.interval}")

    @property
    def lazy(self) -> bool:
        return self.interval > 1


def of_player(terms: tuple[Term, ...], player: str, lazy: bool) -> tuple[Term, ...]:
    return tuple(t for t in terms if t.player == player and t.lazy == lazy)


def lazy_interval(terms: tuple[Term, ...], player: str) -> int | None:
    """The interval of `player`'s lazy phase (its lazy terms share one), None without one."""
    intervals = {t.interval for t in of_player(terms, player, lazy=True)}
    if len(intervals) > 1:
        names = ", ".join(f"{t.name} every {t.interval}" for t in of_player(terms, player, lazy=True))
        raise ValueError(f"the {player}'s lazy regularisers must share one interval ({names})")
    return intervals.pop() if intervals else None
