"""Fine-tuning: listwise document ranking over mined hard negatives, slot BCE, stance, routing losses.

One model trains on a mixture of datasets (`TrainingSet`s), each with its own corpus index, so a
query's hard negatives and first-stage prior come from its own corpus; every step draws one
dataset by the mixture's weights. Questions asked of a document that holds no answer (the
`unanswerable` pairs) teach that every slot there scores low.

The same code runs on a CPU, one GPU or several through Accelerate. Checkpoints are written
after every epoch (weights, optimizer state and RNG state, in safetensors and JSON) so `resume`
continues exactly where an interrupted run stopped. The kept epoch is the best by a macro-average
over the datasets' validation splits (`selection_score`), never by one dataset alone.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..corpus.first_stage import FirstStage
from ..network.batching import collate
from ..network.losses import LossTargets, training_losses
from ..network.model import SpicyLentilModel
from ..pathways.base import CorpusStatistics
from .arguments import TrainingArguments
from .calibration import fit_calibration
from .data import first_queries
from .evaluation import evaluate, read_answer_cases, slot_labels
from .mixture import TrainingSet, selection_score


class Trainer:
    """Trains a `SpicyLentil` on a mixture of datasets, validating on each dataset's held-out split.

    Args:
        lentil: the model to train (e.g. `SpicyLentil.new()`), changed in place.
        args: the training arguments.
        sets: the datasets; their names must differ.
        examples: training examples mined earlier (`Trainer.examples` of a run on the same data,
            indexes and `negative_pool`), to skip mining; None mines them.
    """

    def __init__(
        self, lentil, args: TrainingArguments, sets: list[TrainingSet], examples: list[dict] | None = None
    ) -> None:
        from accelerate import Accelerator

        if not sets:
            raise ValueError("training needs at least one dataset")
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"training datasets must have distinct names, got {names}")
        if any(not s.weight > 0 for s in sets):
            raise ValueError(f"every dataset's weight must be > 0, got {[s.weight for s in sets]}")
        self.lentil, self.args, self.sets = lentil, args, sets
        self.output = Path(args.output)
        self.accelerator = Accelerator()
        self.first_stage = FirstStage()
        torch.manual_seed(args.seed)
        self.examples = examples if examples is not None else self._mine_examples()
        self.slot_targets = [slot_labels(s.train, s.index) for s in sets]
        params = [{"params": [p for p in lentil.model.parameters() if p.requires_grad], "lr": args.learning_rate}]
        if args.train_encoder:
            params.append({"params": list(lentil.encoder.model.parameters()), "lr": args.encoder_learning_rate})
        self.optimizer = torch.optim.AdamW(params, weight_decay=args.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.examples) / args.queries_per_step)
        total = max(1, self.steps_per_epoch * args.epochs)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay
            warm = min(1.0, (step + 1) / max(1, args.warmup_steps))
            return warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            lentil.model, self.optimizer, self.scheduler
        )
        self._fit_corpus_statistics()

    # ---- data ----------------------------------------------------------------------------------

    def _mine_examples(self) -> list[dict]:
        """For each training query of each dataset: its positives, hard negatives from its own corpus' first
        stage, and priors; for each unanswerable pair, the document that holds no answer."""
        examples = []
        for set_id, training_set in enumerate(self.sets):
            data, index = training_set.train, training_set.index
            for query_id, query in tqdm(
                data.queries.items(),
                desc=f"mining negatives ({data.name})",
                unit="query",
                disable=not self.accelerator.is_main_process,
            ):
                positives = [
                    index.position[d] for d, rel in data.qrels[query_id].items() if rel > 0 and d in index.position
                ]
                if not positives:
                    continue
                encoding = self.lentil.encoder.encode([query])[0]
                found = self.first_stage.retrieve(
                    index, query, encoding.embedding.numpy(), self.args.negative_pool + len(positives)
                )
                judged = {index.position[d] for d in data.qrels[query_id] if d in index.position}
                negatives = [int(d) for d in found.docs if int(d) not in judged][: self.args.negative_pool]
                docs = np.array(positives + negatives, dtype=np.int64)
                prior = self.first_stage.prior(found.signals, docs)
                examples.append(
                    {
                        "set": set_id,
                        "query_id": query_id,
                        "query": query,
                        "positives": positives,
                        "negatives": negatives,
                        "prior": dict(zip(docs.tolist(), prior)),
                    }
                )
            examples.extend(
                {"set": set_id, "query_id": query_id, "query": query, "unanswered": index.position[doc_id]}
                for query_id, query, doc_id in data.unanswerable
                if doc_id in index.position
            )
        return examples

    def _fit_corpus_statistics(self) -> None:
        """Fits every module of the model that learns from the training corpora (those with `fit`: the
        pathways and the zero-shot evidence) on their statistics: IDF over the slot tokens of all
        training corpora (document frequency over slots)."""
        fitted = [m for m in self.lentil.model.modules() if callable(getattr(m, "fit", None))]
        if not fitted:
            return
        df = torch.zeros(self.lentil.config.vocab_size)
        n_slots = 0
        for index in {id(s.index): s.index for s in self.sets}.values():
            for i in range(len(index)):
                document = index.document_encoding(i)
                # Unique (slot, id) pairs: each slot counts once per id it contains.
                pairs = torch.unique(document.token_slot * len(df) + document.token_ids)
                df += torch.bincount(pairs % len(df), minlength=len(df)).to(df.dtype)
                n_slots += len(document)
        idf = torch.log1p((n_slots - df + 0.5) / (df + 0.5)).clamp(min=0)
        idf[list(self.lentil.encoder.tokenizer.all_special_ids)] = 0.0
        statistics = CorpusStatistics(idf)
        for module in fitted:
            module.fit(statistics)

    def epoch_steps(self, epoch: int) -> tuple[list[list[int]], np.random.Generator]:
        """The epoch's steps (example indices), each from one dataset drawn by the mixture's weights.

        Each dataset's examples are dealt without replacement, reshuffled whenever they run out, so a
        dataset drawn more often than its size repeats examples only after using them all. Also returns
        the epoch's random generator, which `batch` goes on drawing from.
        """
        rng = np.random.default_rng([self.args.seed, epoch])
        by_set = [[i for i, e in enumerate(self.examples) if e["set"] == s] for s in range(len(self.sets))]
        live = [s for s in range(len(self.sets)) if by_set[s]]
        weights = np.array([self.sets[s].weight for s in live], dtype=np.float64)
        draws = rng.choice(live, size=self.steps_per_epoch, p=weights / weights.sum())
        queues: dict[int, list[int]] = {s: [] for s in live}
        steps = []
        for s in draws.tolist():
            step = []
            while len(step) < self.args.queries_per_step:
                if not queues[s]:
                    queues[s] = rng.permutation(by_set[s]).tolist()
                step.append(queues[s].pop())
                if len(by_set[s]) < self.args.queries_per_step and len(step) == len(by_set[s]):
                    break  # a dataset smaller than one step gives each example once per step
            steps.append(step)
        return steps, rng

    def batch(self, examples: list[dict], rng: np.random.Generator) -> dict:
        """One step's batch, all from one dataset: per answerable query its positive first, then sampled
        hard negatives; then the documents of unanswerable pairs. `{"input": PathwayInput, "prior": (rows,
        prior features), "targets": LossTargets}`, on the accelerator's device."""
        set_id = examples[0]["set"]
        index, train, targets = self.sets[set_id].index, self.sets[set_id].train, self.slot_targets[set_id]
        ranked = [e for e in examples if "positives" in e]
        unanswered = [e for e in examples if "unanswered" in e]
        group = 1 + min([self.args.negatives] + [len(e["negatives"]) for e in ranked])
        rows, queries, prior, labels = [], [], [], []
        for example in ranked:
            positive = int(rng.choice(example["positives"]))
            negatives = rng.choice(example["negatives"], size=group - 1, replace=False).tolist()
            use_prior = rng.random() >= self.args.prior_dropout
            query_encoding = self._encode([example["query"]])[0]
            for doc in [positive] + [int(n) for n in negatives]:
                rows.append(doc)
                queries.append(query_encoding)
                features = example["prior"][doc]
                prior.append(features if use_prior else np.full_like(features, np.nan))
                key = (example["query_id"], index.doc_ids[doc])
                labels.append(("positive", key, targets.get(key)) if doc == positive else ("negative", key, None))
        for example in unanswered:
            rows.append(example["unanswered"])
            queries.append(self._encode([example["query"]])[0])
            prior.append(np.full(self.lentil.config.prior_features, np.nan, dtype=np.float32))
            labels.append(("unanswered", None, None))
        if self.args.train_encoder:
            documents = [self._encode([s.text for s in index.slots(doc)[0]]) for doc in rows]
        else:
            documents = index.document_batch(rows)
        batch = collate(queries, documents, [index.title_encoding(d) for d in rows], self.lentil.special_ids)
        slot_mask = batch.slot_mask
        slot_target = torch.zeros(slot_mask.shape)
        slot_weight = torch.zeros(slot_mask.shape)
        stance = torch.full(slot_mask.shape, -1, dtype=torch.long)
        for row, (kind, key, row_labels) in enumerate(labels):
            n = int(slot_mask[row].sum())
            if row_labels is not None:
                slot_target[row, :n] = torch.tensor(row_labels, dtype=torch.float32)
                slot_weight[row, :n] = self.args.slot_weight
                stance[row, :n] = 0
                for slot, label in train.slot_qrels[key].items():
                    stance[row, slot] = label
            elif kind == "negative":  # none of its slots answers the query
                slot_weight[row, :n] = self.args.negative_slot_weight
            elif kind == "unanswered":  # asked of this very document, and none of its slots answers it
                slot_weight[row, :n] = self.args.unanswerable_weight
        device = self.accelerator.device
        batch = batch.to(device)
        targets = LossTargets(
            len(ranked) * group,
            group,
            batch.slot_mask,
            slot_target.to(device),
            slot_weight.to(device),
            stance.to(device),
        )
        return {"input": batch, "prior": torch.tensor(np.stack(prior), device=device), "targets": targets}

    def _encode(self, texts: list[str]):
        if self.args.train_encoder:
            return self.lentil.encoder.encode_with_grad(texts)
        return self.lentil.encoder.encode(texts)

    # ---- loop ----------------------------------------------------------------------------------

    def train(self, resume: bool = False, after_epoch: Callable[[int], None] | None = None) -> dict:
        """Runs the remaining epochs; returns the best validation metrics seen.

        Args:
            resume: continue from the last checkpoint in `output/checkpoints`.
            after_epoch: called with the epoch number after each checkpoint (tests use it to interrupt).
        """
        state = {"epoch": 0, "best": None, "best_epoch": None}
        if resume:
            state = self._load_checkpoint() or state
        log_path = self.output / "training_log.jsonl"
        self.output.mkdir(parents=True, exist_ok=True)
        for epoch in range(state["epoch"] + 1, self.args.epochs + 1):
            self.model.train()
            steps, rng = self.epoch_steps(epoch)
            shard = steps[self.accelerator.process_index :: self.accelerator.num_processes]
            progress = tqdm(shard, desc=f"epoch {epoch}", disable=not self.accelerator.is_main_process)
            sums: dict[str, float] = {}
            started = time.perf_counter()
            for step in progress:
                batch = self.batch([self.examples[i] for i in step], rng)
                output = self.model(batch["input"], batch["prior"])
                losses = training_losses(output, batch["targets"], self.args.loss_weights())
                self.optimizer.zero_grad()
                self.accelerator.backward(losses.loss)
                self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                for name, value in losses._asdict().items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                progress.set_postfix(
                    loss=f"{float(losses.loss.detach()):.3f}", balance=f"{float(losses.balance.detach()):.2f}"
                )
            record = {
                "epoch": epoch,
                "seconds": round(time.perf_counter() - started, 1),
                **{k: v / max(1, len(shard)) for k, v in sums.items()},
            }
            if any(s.validation is not None for s in self.sets):
                self.model.eval()
                record["validation"] = self.validate()
                score = record["selection"] = selection_score(record["validation"], self.sets)
            else:
                score = -record["loss"]
            if state["best"] is None or score > state["best"]:
                state["best"], state["best_epoch"] = score, epoch
                if self.accelerator.is_main_process:
                    self.lentil.save_pretrained(self.output, save_encoder=self.args.train_encoder)
            record["best_epoch"] = state["best_epoch"]
            state["epoch"] = epoch
            if self.accelerator.is_main_process:
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                self._save_checkpoint(state)
                print(json.dumps(record))
            if after_epoch is not None:
                after_epoch(epoch)
        self.model.eval()
        validated = any(s.validation is not None for s in self.sets)
        if self.args.calibrate and validated and state["best_epoch"] is not None and self.accelerator.is_main_process:
            self._calibrate_best()
        return state

    def validate(self) -> dict[str, dict[str, float]]:
        """Each dataset's validation metrics on its first `validation_queries` queries: slot metrics always,
        ranking metrics over the corpus where the dataset's ranking counts (`rank_documents`)."""
        metrics = {}
        for training_set in self.sets:
            if training_set.validation is None:
                continue
            data = first_queries(training_set.validation, self.args.validation_queries)
            # Slot metrics read the labelled documents only: one candidate suffices where ranking does not count.
            candidates = self.args.candidates if training_set.rank_documents else 1
            result = evaluate(self.lentil, data, training_set.index, candidates, show_progress_bar=False).model
            keep = ("ndcg@10", "recall@100", "mrr@10", "slot_map") if training_set.rank_documents else ("slot_map",)
            metrics[training_set.name] = {k: result[k] for k in keep}
        return metrics

    def _calibrate_best(self) -> None:
        """Fits Platt scaling of the kept (best) model on the validation splits (and the answer cases of
        `calibration_cases`) and saves it in place."""
        # The facade's own class: training sits below the front ends and never imports them.
        facade = type(self.lentil)
        if self.args.train_encoder or self.lentil.model.reader is not None:  # the folder holds what the model lacks
            best = facade.from_pretrained(self.output)
        else:  # same encoder: reuse the loaded one instead of loading it again
            best = facade(SpicyLentilModel(self.lentil.config), self.lentil.encoder)
            best.model.load_state_dict(load_file(self.output / "model.safetensors"))
        splits = [(s.validation, s.index) for s in self.sets if s.validation is not None]
        ranked = [s.name for s in self.sets if s.validation is not None and s.rank_documents]
        cases = self.args.calibration_cases
        calibration = fit_calibration(
            best, splits, self.args.calibration_candidates, self.first_stage, ranked, self.args.candidates,
            {Path(cases).stem: read_answer_cases(cases)} if cases else None,
        )
        best.save_pretrained(self.output, save_encoder=self.args.train_encoder)
        (self.output / "calibration.json").write_text(
            json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8"
        )

    # ---- checkpoints ---------------------------------------------------------------------------

    def _save_checkpoint(self, state: dict) -> None:
        folder = self.output / "checkpoints" / f"epoch-{state['epoch']:03d}"
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.lentil.save_pretrained(tmp, save_encoder=self.args.train_encoder)
        optimizer_state = self.optimizer.state_dict()
        tensors = {}
        for param_id, param_state in optimizer_state["state"].items():
            for key, value in param_state.items():
                tensors[f"{param_id}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, tmp / "optimizer.safetensors")
        meta = {
            "state": state,
            "param_groups": optimizer_state["param_groups"],
            "scheduler": self.scheduler.state_dict(),
            "args": asdict(self.args),
        }
        (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=2, default=float) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        for old in sorted((self.output / "checkpoints").glob("epoch-*"))[:-2]:  # keep the last two
            if not old.name.endswith(".tmp"):
                shutil.rmtree(old)

    def _load_checkpoint(self) -> dict | None:
        checkpoints = sorted(p for p in (self.output / "checkpoints").glob("epoch-*") if not p.name.endswith(".tmp"))
        if not checkpoints:
            return None
        folder = checkpoints[-1]
        meta = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        weights = load_file(folder / "model.safetensors")
        self.lentil.model.load_state_dict(weights)
        tensors = load_file(folder / "optimizer.safetensors")
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("rng."):
                continue
            param_id, name = key.split(".", 1)
            state.setdefault(int(param_id), {})[name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        return meta["state"]
