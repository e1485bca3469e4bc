"""The collapse experiment: the self-consuming loop run offline, generation after generation.

    replyguard simulate --policy replace|accumulate|guarded|bootstrap|ablation|all
                        --generations 8 [--slice N] [--fresh-human N] --out DIR

Every policy runs the workers' pipeline (``worker.pipeline``) on its own copy of one data
folder (the same clean baseline, generation 0, trained once), with its own stages swapped in
for some of the pipeline's (``policies.POLICY_PIPELINES``); only what a policy changes is
written here. The package: ``policies`` (each policy's stages), ``run`` (the runs, and each
generation's result read from its stored evaluation and decision), ``report`` (the files).
The policies:

- ``guarded``: the production pipeline as shipped: quality rules, deduplication, the capped
  and tail-weighted accumulate mix, and the gate deciding what is promoted.
- ``bootstrap``: the quiet loop, what a team does when it "just fine-tunes on its own
  outputs": the candidate starts from production's weights and is trained only on the
  replies production just wrote for the new slice of traffic (no human data, no filtering,
  no cap); the response set and the triggering threshold are held as they are, and the
  written pairs join the model's nearest-message index (a retrieval model's memory is its
  training pairs). Every candidate is promoted.
- ``accumulate``: real data kept and synthetic data added, with no filtering, no
  deduplication, no cap, and every candidate promoted.
- ``replace``: each generation trains only on what the previous model wrote, response set
  included, and every candidate is promoted: the textbook recipe for collapse. This policy
  exists only here; the production pipeline has no way to do it.
- ``ablation``: ``guarded`` with no synthetic rows at all (no prompt is labelled): what the
  same generations gain from the fresh human examples and from training again, so a gain
  of the other policies can be credited to their synthetic data or not. Every run has it.

Traffic arrives as it does in production: a seeded share of each niche's messages is kept
as incoming traffic (replies hidden, ``demo_traffic_fraction``), put in a seeded order, and
generation g labels the g-th *slice* of it, disjoint from every other slice and from the
benchmark (traffic rows are never examples). Of each slice, the first ``fresh_human``
messages also arrive with the reply their user typed, as new human examples (by default for
``guarded`` and ``ablation`` only), so the gate's "no fresh human examples" warning means
something. The benchmark is never trained on; the gate judges every candidate, so the
report shows when it would have warned or blocked even where a policy ignores it.
"""

from __future__ import annotations

from worker.simulation.policies import ABLATION
from worker.simulation.policies import FRESH_BY_DEFAULT
from worker.simulation.policies import POLICIES
from worker.simulation.policies import POLICY_PIPELINES
from worker.simulation.policies import Policy
from worker.simulation.report import detector_events
from worker.simulation.report import first_gate_event
from worker.simulation.report import write_report
from worker.simulation.run import GenerationResult
from worker.simulation.run import Plan
from worker.simulation.run import default_slice
from worker.simulation.run import run_policy
from worker.simulation.run import run_simulation
from worker.simulation.run import simulation_rows
from worker.simulation.run import traffic_order

__all__ = [
    "ABLATION",
    "FRESH_BY_DEFAULT",
    "POLICIES",
    "POLICY_PIPELINES",
    "GenerationResult",
    "Plan",
    "Policy",
    "default_slice",
    "detector_events",
    "first_gate_event",
    "run_policy",
    "run_simulation",
    "simulation_rows",
    "traffic_order",
    "write_report",
]
