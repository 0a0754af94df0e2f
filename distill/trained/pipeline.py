"""Distilling a trained model: trace, read each head, tabulate the read-out, check, repeat.

    discovery inputs -> traces -> head variables (discover) -> the fewest variables that
    determine the read-out -> its table -> readable (synth) -> every input up to N
    (-> the inputs that differ join the discovery inputs; next round)

The program follows the model, mistakes included: its read-out table holds what the
model answers. Where no table over the variables can (two inputs with the same values
get different answers), there is no faithful program from these variables: the result
says so with the inputs, and carries the best approximation with its measured agreement.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import synth
from distill.circuit.completion import complete_tables, type_checks
from distill.stages import stage_timer
from distill.trained.check import CheckResult, ModelAnswers, check_program, compare
from distill.trained.comparisons import comparisons_named
from distill.trained.discover import HeadFinding, discover
from distill.trained.domain import EXHAUSTIVE_BUDGET, Domain, domain_of, task_of
from distill.trained.interventions import interventions
from distill.trained.program import (
    MAX_SUBSET,
    argmax_table,
    build,
    closed_form_lines,
    conflicts,
    determining_sets,
    fewest_for,
    named_form,
    needed_by,
    observe,
    output_tables,
    sorting_approximation,
)
from distill.trained.read_out_pointer import landmarks, read_out_pointer
from distill.trained.report import tables_left
from distill.trained.sorting import POSITION
from dsl import ast
from synth.graph import remove_dead

DISCOVERY_INPUTS = 20_000  # every input of the shortest lengths while they fit...
DISCOVERY_SAMPLES = 2_000  # ...then this many of each longer length up to N
MAX_ROUNDS = 4
ALTERNATIVES = 16  # sets of variables tried against the interventions
READABLE_TRIES = 3  # of those that pass, synthesized to keep the most readable
HELD_OUT_PER_LENGTH = 200  # fresh inputs per length that approximations are judged on
BASE_VARIABLES = ("tokens_", "indices_")


@dataclass
class TrainedResult:
    program: ast.Program
    table_program: ast.Program  # the same before synthesis: the variables as discovered
    domain: Domain
    check: CheckResult
    heads: list[HeadFinding]
    components: dict[str, str]  # definition -> component
    follows: bool  # a table over the variables follows the model on every traced input
    timings: dict[str, float] = field(default_factory=dict)
    rounds: int = 1
    interventions: list = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.follows and self.check.exhaustive_agree

    @property
    def verification(self) -> str:
        return self.check.level()


def distilled_as_trained(model) -> bool:
    """Whether `model` is read as a trained network: trained or imported (distill.models.task
    .is_trained), or a compressed tracr model (superposition: no clean subspaces to read)."""
    from distill.models.task import is_trained

    return is_trained(model) or model.records.get("source", {}).get("kind") == "compressed"


def _heads(config) -> list[str]:
    return [
        f"L{layer}.H{head}" for layer in range(config.n_layers) for head in range(config.n_heads)
    ]


def discovery_inputs(domain: Domain, model, seed: int) -> list[list]:
    inputs: list[list] = []
    for length in range(domain.min_len, domain.exhaustive_up_to + 1):
        if len(inputs) + domain.count(length) <= DISCOVERY_INPUTS:
            inputs += domain.exhaustive(length, model)
        else:
            inputs += domain.sample(length, DISCOVERY_SAMPLES, seed, model)
    return inputs


def distill_trained(
    model,
    *,
    budget: int = EXHAUSTIVE_BUDGET,
    samples: int = 2_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> TrainedResult:
    timings: dict[str, float] = {}
    stage = stage_timer(timings, progress)

    task = task_of(model)
    domain = domain_of(task, budget)
    inputs = discovery_inputs(domain, model, seed)
    with stage("trace"):
        found = discover(model, inputs)
        found.definitions.extend(landmarks(inputs))
    names = [c.name for c in found.definitions if not c.source.startswith("select(")]
    with stage("tabulate"):
        observations = observe(model, task, inputs, found.definitions, names, found)
        pointer = read_out_pointer(
            observations, inputs, names, _heads(model.config), model.config.causal
        )
        if pointer:
            found.definitions.extend(pointer)
            names += [c.name for c in pointer if not c.source.startswith("select(")]
            observations = observe(model, task, inputs, found.definitions, names, found)
    preferred = [n for n in names if n not in BASE_VARIABLES]
    components = {c.name: c.component for c in found.definitions if c.component}
    answers = ModelAnswers(model, task)  # each round checks a program on the same inputs

    def checked(program: ast.Program) -> CheckResult:
        with stage("check"):
            return check_program(
                program,
                model,
                domain,
                samples=samples,
                seed=seed,
                progress=progress,
                answers=answers,
            )

    for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 (the count is reported)
        if rounds > 1:  # with the counterexamples added to the inputs
            with stage("tabulate"):
                observations = observe(model, task, inputs, found.definitions, names)
        (table_program, evidence, program), follows = _choose(
            observations,
            found,
            names,
            preferred,
            components,
            model,
            task,
            inputs,
            seed,
            stage,
            domain,
        )
        check = checked(program)
        if not follows or check.exhaustive_agree:
            break
        inputs = inputs + [list(c.input) for c in check.counterexamples]
    if follows and not check.exhaustive_agree:
        # Each round's table followed its traced sample and none the domain: it may have
        # memorised the model's mistakes there through variables that mean nothing (a
        # sampled vocab-30 histogram), or read the few inputs the model gets wrong off
        # variables the model's rule does not need. The approximation agreeing most on
        # fresh inputs replaces it where it agrees more there, or as much there and as
        # much on the domain while being smaller.
        with stage("synthesize"):
            options = _approximations(observations, found, names)
            held_out = _held_out(domain, model, seed)
            best = _best_on_held_out(options, found, model, task, held_out, domain.longest)
            kept_agree = sum(c is None for c in compare(program, model, task, held_out))
        better = best is not None and best[0] > kept_agree
        if better or (best and best[0] == kept_agree and _size(best[2]) < _size(program)):
            replaced = checked(best[2])
            if better or replaced.agreement >= check.agreement:
                _, table_program, program = best
                check = replaced
                with stage("interventions"):
                    evidence = interventions(table_program, components, model, task, inputs, seed)
                follows = check.exhaustive_agree  # equal to the model up to N: verified there
    return TrainedResult(
        program=program,
        domain=domain,
        check=check,
        heads=found.heads,
        components=components,
        follows=follows,
        timings=timings,
        rounds=rounds,
        interventions=evidence,
        table_program=table_program,
    )


def _choose(
    observations, found, names, preferred, components, model, task, inputs, seed, stage, domain
):
    """(table program, interventions, completed readable program), follows.

    The sets of variables that determine the read-out are tried in turn against the
    interventions; each that passes is synthesized, up to READABLE_TRIES, and the one whose
    readable form leaves the fewest table entries is kept (the first of equals; one that
    leaves none ends the search). With none passing, the first set of at most MAX_SUBSET
    variables. With no set determining the read-out (a set of more than MAX_SUBSET
    variables only counts when the traced inputs are the whole domain up to N, and then
    only if its interventions pass), an approximation and follows is False: of
    `_approximations`, the one that agrees with the model on the most fresh inputs.

    Interventions are measured on the table program: the readable one equals it on the
    domain, but codes synthesis chose for pairs of values may collide on combinations only
    an intervention reaches."""
    longest = domain.longest
    best, first, passing = None, None, 0
    cache: dict = {}  # definitions evaluated on `inputs`, shared by the alternatives
    # A table over more variables than the searches try only memorises the traced inputs
    # unless they are the whole domain up to N: no evidence it holds on the rest.
    whole = len(inputs) >= sum(
        map(domain.count, range(domain.min_len, domain.exhaustive_up_to + 1))
    )
    sources = {c.name: c.source for c in found.definitions}
    read_off_probes = _read_off_probes(found, names)
    with stage("tabulate"):
        # Variables read off attention patterns first, as if nothing else were offered:
        # the ones read off probes widen the search, and past MAX_SUBSETS_TRIED subsets of
        # a size it turns greedy. Then every variable, for the small sets not found without
        # them (a greedy set over all of them would only repeat the first one's work).
        tried: set[frozenset] = set()
        tabled = []
        passes = [([n for n in names if n not in read_off_probes], True)]
        passes += [(names, False)] if read_off_probes else []
        for offered_names, greedy in passes:
            found_sets = determining_sets(observations, offered_names, preferred, 0, greedy)
            sets = (
                kept
                for kept in _with_inputs(found_sets)
                if (whole or len(kept) <= MAX_SUBSET) and frozenset(kept) not in tried
            )
            for kept in itertools.islice(sets, ALTERNATIVES):
                tried.add(frozenset(kept))
                tabled.append((kept, output_tables(observations, kept)))
        # A read-out that is the largest of one head's counts, or sorts by them, however
        # many values it counts (the searches above stop at MAX_SUBSET variables).
        offered = [kept for kept, _ in tabled]
        for names_ in _closed_form_sets(found.definitions):
            if names_ in offered or conflicts(observations, names_):
                continue
            table = output_tables(observations, names_)
            if closed_form_lines("output", names_, table):
                tabled.append((names_, table))

    # Fewest variables first (a table over many only after every named form), those read
    # off attention patterns before those that need a probe's; among as many, a form
    # found without a search first, then the smallest table, then the shortest program.
    def order(pair):
        named = named_form(*pair)
        many = len(pair[0]) > MAX_SUBSET and not named
        entries = 0 if named else len(pair[1])  # a smaller table reads better
        probed = bool(read_off_probes.intersection(pair[0]))
        return (many, probed, len(pair[0]), not named, entries, len(needed_by(sources, pair[0])))

    tabled.sort(key=order)
    passed: list[set] = []
    for kept, table in tabled:
        if passing == READABLE_TRIES:
            break
        if any(p <= set(kept) for p in passed):
            continue  # the query's token or position added to a set that passed already
        with stage("tabulate"):
            table_program = build(found.definitions, kept, table)
        if table_program is None:  # a table past what a program may hold
            continue
        with stage("interventions"):  # a set whose figures must be flagged is ruled out early
            evidence = interventions(
                table_program, components, model, task, inputs, seed, True, cache
            )
        if first is None and len(kept) <= MAX_SUBSET:
            # A table over more variables than the searches try is taken only with the
            # interventions' evidence: on a whole domain it can memorise any answers.
            first = table_program
        if any(e.flagged for e in evidence):
            continue
        passing += 1
        passed.append(set(kept))
        tried = _synthesized(table_program, evidence, model, longest, stage)
        best = tried if best is None or tried[0] < best[0] else best
        if best[0] == 0:
            break
    if best is None and first is None:
        with stage("tabulate"):
            options = _approximations(observations, found, names)
        with stage("synthesize"):
            held_out = _held_out(domain, model, seed)
            _, table_program, completed = _best_on_held_out(
                options, found, model, task, held_out, longest
            )
        with stage("interventions"):
            evidence = interventions(
                table_program, components, model, task, inputs, seed, cache=cache
            )
        return (table_program, evidence, completed), False
    if best is None:  # none passes: the first, with its figures measured in full
        with stage("interventions"):
            evidence = interventions(first, components, model, task, inputs, seed, cache=cache)
        best = _synthesized(first, evidence, model, longest, stage)
    return best[1:], True


def _read_off_probes(found, names) -> set[str]:
    """The variables that need one a probe read (a hypothesis), not an attention pattern."""
    sources = {c.name: c.source for c in found.definitions}
    hypotheses = {c.name for c in found.definitions if c.hypothesis}
    return {n for n in names if needed_by(sources, [n]) & hypotheses}


def _approximations(observations, found, names) -> list[tuple[list[str], dict]]:
    """(variables, table) of each approximation, where no set determines the read-out: the
    variables `fewest_for` adds one by one (each prefix: more variables follow the traced
    inputs more closely, and may follow only them), first of those read off attention
    patterns alone, then of all (as the search does: a code built on a probe's variable
    can follow the traced inputs more closely and the model less), the largest of each
    head's counts and sorting by them (labels, tie order and runs as most traced positions
    say)."""
    probed = _read_off_probes(found, names)
    options: list[tuple[list[str], dict]] = []
    for offered in ([n for n in names if n not in probed], names) if probed else (names,):
        fewest = fewest_for(observations, offered)
        for size in range(1, len(fewest) + 1):
            if all(fewest[:size] != kept for kept, _ in options):
                options.append((fewest[:size], output_tables(observations, fewest[:size])))
    for family in _count_families(found.definitions):
        for kept, approximate in (
            (family, argmax_table),
            ([POSITION, *family], sorting_approximation),
        ):
            approximation = approximate(observations, kept)
            if approximation is not None:
                options.append((kept, approximation[0]))
    return options


def _held_out(domain, model, seed) -> list[list]:
    """A fresh sample of every length up to the longest, none of it traced."""
    return [
        x
        for length in range(domain.min_len, domain.longest + 1)
        for x in domain.sample(length, HELD_OUT_PER_LENGTH, seed + 1, model)
    ]


def _best_on_held_out(options, found, model, task, held_out, longest) -> tuple | None:
    """(agreement, table program, completed readable program) of the approximation that
    agrees with the model on the most of `held_out`: judged on inputs the tables were not
    read off, a table that memorises the traced inputs loses to one that follows the
    model's rule (the first of equals: fewer variables); None where no table can be built."""
    best = None
    for kept, table in options:
        table_program = build(found.definitions, kept, table)
        if table_program is None:  # a table past what a program may hold
            continue
        _, completed = _readable(table_program, model, longest)
        agree = sum(c is None for c in compare(completed, model, task, held_out))
        if best is None or agree > best[0]:
            best = (agree, table_program, completed)
    return best


_COUNT_OF_VALUE = re.compile(
    r"selector_width\(sel_(?P<tag>\w+) & select\((?P<var>\w+), (?P=var), lambda k, q: k == .+\)\)$"
)


def _count_families(definitions) -> list[list[str]]:
    """Per head and variable read, its counts of each value (at least three)."""
    families: dict[tuple, list[str]] = {}
    for c in definitions:
        match = _COUNT_OF_VALUE.match(c.source)
        if match and c.component:
            families.setdefault((match["tag"], match["var"]), []).append(c.name)
    return [names for names in families.values() if len(names) >= 3]


def _closed_form_sets(definitions) -> list[list[str]]:
    """Per head's family of counts: the family (its largest) and the family with the
    position (sorting by them)."""
    families = _count_families(definitions)
    return [*families, *([POSITION, *family] for family in families)]


def _synthesized(table_program, evidence, model, longest: int, stage) -> tuple:
    """(table entries the readable form leaves, table program, interventions, completed
    readable program)."""
    with stage("synthesize"):
        readable, completed = _readable(table_program, model, longest)
    left = sum(t["entries"] for t in tables_left(readable))
    return left, table_program, evidence, completed


def _size(program: ast.Program) -> tuple[int, int]:
    """(table entries left, definitions): the smaller reads better."""
    return sum(t["entries"] for t in tables_left(program)), len(program.definitions)


def _with_inputs(sets, minimal_first: int = ALTERNATIVES):
    """The minimal sets first (up to `minimal_first`), then each with the query's token,
    position, or both added: the model also reads them straight from the embedding, and a
    program that does too can follow interventions on the heads that one over counts
    alone cannot (its counts include the query's own token, which patching a head does
    not change)."""
    minimal = list(itertools.islice(sets, minimal_first))
    seen = {frozenset(kept) for kept in minimal}
    yield from minimal
    for kept in minimal:
        for extra in (("tokens_",), ("indices_",), ("tokens_", "indices_")):
            trial = [*[e for e in extra if e not in kept], *kept]
            if frozenset(trial) not in seen:
                seen.add(frozenset(trial))
                yield trial


def _readable(program: ast.Program, model, longest: int) -> tuple[ast.Program, ast.Program]:
    """(readable, completed): the readable program over the task's lengths, its tables
    holding the entries the traced inputs reached; and the same with complete_tables
    filling the rest so that it type-checks."""
    codes = frozenset(
        d.name for d in program.definitions if "_both_" in d.name or d.name.startswith("read_")
    )
    vocab = list(model.config.vocab)
    # Comparisons named first: one pass over a table, where synthesis would search for it.
    result = synth.readable(
        comparisons_named(program), vocab=vocab, max_seq_len=longest, free=codes
    )
    readable = comparisons_named(_without_aliases(result.program))
    completed = complete_tables(readable, vocab, longest)
    if type_checks(completed, vocab, longest):
        return readable, completed
    # A closed form fit to the reached entries fails on a value no input reached (e.g.
    # `x % 12 // y` at y = 0): the tables as read, with only their comparisons named.
    readable = comparisons_named(_without_aliases(remove_dead(program)))
    return readable, complete_tables(readable, vocab, longest)


def _without_aliases(program: ast.Program) -> ast.Program:
    """`tokens_` and `indices_` (names the search gives the inputs) back to the inputs."""
    inputs = {"tokens_": ast.Tokens(), "indices_": ast.Indices()}
    renamed = ast.rewrite_program(
        program, lambda node: inputs.get(node.id, node) if isinstance(node, ast.Name) else node
    )
    kept = tuple(d for d in renamed.definitions if d.name not in inputs)
    output = inputs.get(getattr(program.output, "id", None), renamed.output)
    return ast.Program(kept, output, program.origin)
