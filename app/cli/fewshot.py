"""`medview fewshot train|curve`: few-shot classifiers on an embedding model's stored vectors (app.embeddings.fewshot,
docs/embeddings.md). The heavy imports (scikit-learn, onnx) happen inside the commands."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import by_name, engine_for, ensure_schema
from app.config import Settings
from app.console import err, out


def add_fewshot_commands(sub: Any) -> None:
    p = sub.add_parser("fewshot", help="few-shot classifiers on an embedding model's vectors")
    actions = p.add_subparsers(dest="action", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--model", required=True, help="the embedding model's name (or id)")
        q.add_argument("--dataset", required=True, help="dataset name (or id)")
        q.add_argument("--source", choices=["labels", "verdicts"], default="labels",
                       help="labels: the items' ground truth labels (default); verdicts: only reviewer-confirmed ones")
        q.add_argument("--method", choices=["logistic", "svm"], default="logistic",
                       help="logistic regression (default) or a linear SVM with Platt-scaled probabilities")
        q.add_argument("--seed", type=int, default=0, help="seeds the draws and the fit (default 0)")

    train = actions.add_parser("train", help="train and register a classifier from N labelled items per class "
                                             "(prints the new model's id)")
    common(train)
    train.add_argument("--per-class", type=int, required=True, help="labelled items per class to train on")
    train.add_argument("--name", help="the new model's name (default MODEL-fewshot-METHOD-N)")
    train.set_defaults(func=cmd_fewshot)
    curve = actions.add_parser("curve", help="balanced accuracy against labels per class (1, 5, 10, 25, 50, 100, 250)")
    common(curve)
    curve.add_argument("--draws", type=int, default=5, help="random draws per point (default 5)")
    curve.set_defaults(func=cmd_fewshot)


def cmd_fewshot(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.models import Dataset, Model
    from app.db.session import make_session_factory
    from app.embeddings import fewshot

    ensure_schema(settings)
    engine = engine_for(settings)
    try:
        with make_session_factory(engine)() as session:
            model = by_name(session, Model, args.model, "model")
            dataset = by_name(session, Dataset, args.dataset, "dataset")
            if args.action == "train":
                made = fewshot.train(session, settings, embed_model_id=model.id, dataset_id=dataset.id,
                                     per_class=args.per_class, source=args.source, method=args.method,
                                     seed=args.seed, name=args.name, actor="cli")
                score = made["heldout"]["balanced_accuracy"]
                err.print(f"registered {made['model']['name']}: {args.method} on {args.per_class} labelled items per "
                          f"class; held-out balanced accuracy "
                          f"{'n/a' if score is None else f'{score:.3f}'} on {made['heldout']['items']} items; "
                          f"{made['predicted']} predictions written", markup=False)
                out.print(str(made["model"]["id"]), markup=False)
                return 0
            curve = fewshot.curve(session, settings, model.id, dataset.id, source=args.source, method=args.method,
                                  draws=args.draws, seed=args.seed)
    finally:
        engine.dispose()
    counts = ", ".join(f"{c} {n}" for c, n in curve["labelled"].items())
    out.print(f"{args.model} on {args.dataset}: {args.method}, labels from {args.source}; labelled: {counts}; "
              f"{curve['draws']} draws per point", markup=False)
    out.print("per_class  balanced_accuracy  sd      train  test", markup=False)
    for p in curve["points"]:
        out.print(f"{p['per_class']:>9}  {p['mean']:>17.3f}  {p['sd']:.3f}  {p['train']:>5}  {p['test']}", markup=False)
    return 0
