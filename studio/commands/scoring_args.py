"""The options that say how a result is scored and what counts as degraded (optimize and sweep share them)."""
from __future__ import annotations


def add_scoring_arguments(p) -> None:
    """The scoring options; --trust-code (for --metric FILE.py:FN) comes with the model options."""
    p.add_argument("--score-output", metavar="NAME", help="the output that scores a candidate (default: the first"
                                                          " holding class scores, else the first)")
    p.add_argument("--metric", metavar="M", help="accuracy, agreement, cosine, sqnr, or your own FILE.py:FUNCTION"
                                                 " (called with the outputs and labels; needs --trust-code)")
    p.add_argument("--min-fidelity", metavar="agreement=90,cosine=0.95,sqnr=10",
                   help="the quality gate on the scoring output (these are the defaults)")


def scoring_of(args):
    """The Scoring the arguments ask for (RecipeError, one line, when a value is wrong)."""
    from studio.core.base.errors import RecipeError
    from studio.core.measure.fidelity import Floors, Metric, Scoring

    metric = args.metric
    if metric is not None and ":" not in metric and metric not in {m.value for m in Metric if m != Metric.CUSTOM}:
        raise RecipeError(f"--metric '{metric}' must be accuracy, agreement, cosine, sqnr or FILE.py:FUNCTION")
    return Scoring(output=args.score_output, metric=metric, floors=Floors.parse(args.min_fidelity))
