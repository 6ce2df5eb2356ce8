"""Fine-tuning: listwise document ranking over mined hard negatives, slot BCE, stance, routing losses.

The same code runs on a CPU, one GPU or several through Accelerate. Checkpoints are written
after every epoch (weights, optimizer state and RNG state, in safetensors and JSON) so `resume`
continues exactly where an interrupted run stopped; the best epoch by validation nDCG@10 is what
lands in the output folder.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from .batching import collate
from .calibration import fit_calibration
from .data import RelevanceData
from .engine import SpicyLentil
from .evaluation import evaluate, slot_labels
from .index import CorpusIndex
from .model import SpicyLentilModel
from .retrieval import FirstStage


@dataclass
class TrainingArguments:
    output: str  # folder for the best model, checkpoints/ and training_log.jsonl
    epochs: int = 8  # passes over the training queries
    queries_per_step: int = 8  # queries per optimizer step; each brings 1 positive + `negatives` documents
    negatives: int = 15  # hard negatives per query and step
    negative_pool: int = 50  # negatives are sampled from the first stage's top `negative_pool` non-relevant documents
    candidates: int = 30  # first-stage documents reranked when validating (enough to pick the best epoch by nDCG@10)
    learning_rate: float = 1e-3  # AdamW, linear warm-up then cosine decay
    weight_decay: float = 0.01
    warmup_steps: int = 20
    document_weight: float = 0.2  # pointwise BCE on document scores (relevant 1, negatives 0): the listwise loss alone leaves their level free
    slot_weight: float = 1.0  # BCE on the rationale slots of relevant documents
    slot_ranking_weight: float = 2.0  # listwise CE over each labelled document's slots, rationales as targets: slot MAP is a ranking within the document
    negative_slot_weight: float = 0.1  # BCE towards 0 on the slots of negatives
    stance_weight: float = 0.2  # reprehension's stance head, where stance labels exist
    prior_dropout: float = 0.25  # share of queries trained without the first-stage prior (bare documents have none)
    seed: int = 0
    train_encoder: bool = False  # fine-tune the encoder too (meant for a GPU: slots are re-encoded every step)
    encoder_learning_rate: float = 2e-5
    calibrate: bool = True  # after training, fit Platt scaling of the kept model on the validation split (calibration.json)


class Trainer:
    """Trains a `SpicyLentil` on a `RelevanceData` split, validating on another.

    Args:
        lentil: the model to train (e.g. `SpicyLentil.new()`), changed in place.
        args: the training arguments.
        train: training split; `train_index` its corpus index.
        validation: validation split (same corpus), or None to keep the last epoch.
        examples: training examples mined earlier (`Trainer.examples` of a run on the same data,
            index and `negative_pool`), to skip mining; None mines them.
    """

    def __init__(self, lentil: SpicyLentil, args: TrainingArguments, train: RelevanceData, train_index: CorpusIndex,
                 validation: RelevanceData | None = None, examples: list[dict] | None = None) -> None:
        from accelerate import Accelerator

        self.lentil, self.args = lentil, args
        self.train_data, self.index, self.validation = train, train_index, validation
        self.output = Path(args.output)
        self.accelerator = Accelerator()
        self.first_stage = FirstStage()
        torch.manual_seed(args.seed)
        self.examples = examples if examples is not None else self._mine_examples()
        self.slot_targets = slot_labels(train, train_index)
        params = [{"params": [p for p in lentil.model.parameters() if p.requires_grad], "lr": args.learning_rate}]
        if args.train_encoder:
            params.append({"params": list(lentil.encoder.model.parameters()), "lr": args.encoder_learning_rate})
        self.optimizer = torch.optim.AdamW(params, weight_decay=args.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.examples) / args.queries_per_step)
        total = max(1, self.steps_per_epoch * args.epochs)
        schedule = lambda step: min(1.0, (step + 1) / max(1, args.warmup_steps)) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(lentil.model, self.optimizer, self.scheduler)
        self._set_idf()

    # ---- data ----------------------------------------------------------------------------------

    def _mine_examples(self) -> list[dict]:
        """For each training query: its positives, hard negatives from the first stage, and priors."""
        examples = []
        for query_id, query in tqdm(self.train_data.queries.items(), desc="mining negatives", unit="query",
                                    disable=not self.accelerator.is_main_process):
            positives = [self.index.position[d] for d, rel in self.train_data.qrels[query_id].items()
                         if rel > 0 and d in self.index.position]
            if not positives:
                continue
            encoding = self.lentil.encoder.encode([query])[0]
            signals = self.first_stage.signals(self.index, query, encoding.embedding.numpy())
            ranked = self.first_stage.candidates(signals, self.args.negative_pool + len(positives))
            judged = {self.index.position[d] for d in self.train_data.qrels[query_id] if d in self.index.position}
            negatives = [int(d) for d in ranked if int(d) not in judged][: self.args.negative_pool]
            docs = np.array(positives + negatives, dtype=np.int64)
            prior = self.first_stage.prior(signals, docs)
            examples.append({"query_id": query_id, "query": query, "positives": positives, "negatives": negatives,
                             "prior": dict(zip(docs.tolist(), prior))})
        return examples

    def _set_idf(self) -> None:
        """Fills prehension's IDF table from the training corpus' slot tokens (document frequency over slots)."""
        pathway = self.lentil.model.pathways["prehension"] if "prehension" in self.lentil.model.pathways else None
        if pathway is None:
            return
        df = torch.zeros_like(pathway.idf)
        n_slots = 0
        for i in range(len(self.index)):
            document = self.index.document_encoding(i)
            # Unique (slot, id) pairs: each slot counts once per id it contains.
            pairs = torch.unique(document.token_slot * len(df) + document.token_ids)
            df += torch.bincount(pairs % len(df), minlength=len(df)).to(df.dtype)
            n_slots += len(document)
        idf = torch.log1p((n_slots - df + 0.5) / (df + 0.5)).clamp(min=0)
        idf[list(self.lentil.encoder.tokenizer.all_special_ids)] = 0.0
        pathway.set_idf(idf)

    def _batch(self, examples: list[dict], rng: np.random.Generator) -> dict:
        """One step's batch: per query, its positive first, then sampled hard negatives."""
        group = 1 + min(self.args.negatives, min(len(e["negatives"]) for e in examples))
        rows, queries, prior, labels = [], [], [], []
        for example in examples:
            positive = int(rng.choice(example["positives"]))
            negatives = rng.choice(example["negatives"], size=group - 1, replace=False).tolist()
            use_prior = rng.random() >= self.args.prior_dropout
            query_encoding = self._encode([example["query"]])[0]
            for doc in [positive] + [int(n) for n in negatives]:
                rows.append(doc)
                queries.append(query_encoding)
                features = example["prior"][doc]
                prior.append(features if use_prior else np.full_like(features, np.nan))
                key = (example["query_id"], self.index.doc_ids[doc])
                labels.append((key, self.slot_targets.get(key)) if doc == positive else (key, None))
        if self.args.train_encoder:
            documents = [self._encode([s.text for s in self.index.slots(doc)[0]]) for doc in rows]
        else:
            documents = self.index.document_batch(rows)
        batch = collate(queries, documents, [self.index.title_encoding(d) for d in rows], self.lentil._special_ids)
        slot_mask = batch.slot_mask
        slot_target = torch.zeros(slot_mask.shape)
        slot_weight = torch.zeros(slot_mask.shape)
        stance = torch.full(slot_mask.shape, -1, dtype=torch.long)
        for row, (key, row_labels) in enumerate(labels):
            n = int(slot_mask[row].sum())
            if row_labels is not None:
                slot_target[row, :n] = torch.tensor(row_labels, dtype=torch.float32)
                slot_weight[row, :n] = self.args.slot_weight
                stance[row, :n] = 0
                for slot, label in self.train_data.slot_qrels[key].items():
                    stance[row, slot] = label
            elif row % group:  # a negative document: none of its slots answers the query
                slot_weight[row, :n] = self.args.negative_slot_weight
        device = self.accelerator.device
        return {"input": batch.to(device), "prior": torch.tensor(np.stack(prior), device=device), "group": group,
                "slot_target": slot_target.to(device), "slot_weight": slot_weight.to(device), "stance": stance.to(device)}

    def _encode(self, texts: list[str]):
        if self.args.train_encoder:
            return self.lentil.encoder.encode_with_grad(texts)
        return self.lentil.encoder.encode(texts)

    def _loss(self, output, batch: dict) -> dict[str, torch.Tensor]:
        """The multi-task loss: listwise ranking + document BCE + slot BCE + stance + routing losses."""
        doc_logits = output.doc_logits.view(-1, batch["group"])  # (queries, 1 + negatives): the positive is column 0
        target = torch.zeros(doc_logits.shape[0], dtype=torch.long, device=doc_logits.device)
        ranking = nn.functional.cross_entropy(doc_logits, target)
        relevant = torch.zeros_like(doc_logits)
        relevant[:, 0] = 1.0
        document = nn.functional.binary_cross_entropy_with_logits(doc_logits, relevant)
        slot_mask = batch["input"].slot_mask
        logits = output.slot_logits.masked_fill(~slot_mask, 0.0)
        weights = batch["slot_weight"]
        bce = nn.functional.binary_cross_entropy_with_logits(logits, batch["slot_target"], reduction="none")
        slot = (bce * weights).sum() / weights.sum().clamp(min=1e-6)
        labelled = batch["slot_target"].sum(-1) > 0  # (batch,) relevant documents with rationale labels
        slot_ranking = logits.new_zeros(())
        if labelled.any():
            target = batch["slot_target"][labelled]
            log_probs = torch.log_softmax(output.slot_logits[labelled], dim=-1).masked_fill(~slot_mask[labelled], 0.0)
            slot_ranking = -((log_probs * target).sum(-1) / target.sum(-1).clamp(min=1)).mean()
        stance = logits.new_zeros(())
        if output.stance_logits is not None:
            labels = batch["stance"][output.stance_rows]  # (rows that ran reprehension, slots); -1 = unlabelled
            if (labels >= 0).any():
                stance = nn.functional.cross_entropy(output.stance_logits.flatten(0, 1), labels.flatten(), ignore_index=-1)
        config = self.lentil.config
        total = (ranking + self.args.document_weight * document + slot + self.args.slot_ranking_weight * slot_ranking
                 + self.args.stance_weight * stance
                 + config.load_balancing_weight * output.load_balancing_loss + config.z_loss_weight * output.z_loss)
        return {"loss": total, "ranking": ranking, "document": document, "slot": slot, "slot_ranking": slot_ranking, "stance": stance,
                "balance": output.load_balancing_loss, "z": output.z_loss}

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
            rng = np.random.default_rng([self.args.seed, epoch])
            order = rng.permutation(len(self.examples))
            steps = [order[i: i + self.args.queries_per_step] for i in range(0, len(order), self.args.queries_per_step)]
            shard = steps[self.accelerator.process_index:: self.accelerator.num_processes]
            progress = tqdm(shard, desc=f"epoch {epoch}", disable=not self.accelerator.is_main_process)
            sums: dict[str, float] = {}
            started = time.perf_counter()
            for step in progress:
                examples = [self.examples[i] for i in step]
                batch = self._batch(examples, rng)
                output = self.model(batch["input"], batch["prior"])
                losses = self._loss(output, batch)
                self.optimizer.zero_grad()
                self.accelerator.backward(losses["loss"])
                self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                progress.set_postfix(loss=f"{float(losses['loss'].detach()):.3f}", balance=f"{float(losses['balance'].detach()):.2f}")
            record = {"epoch": epoch, "seconds": round(time.perf_counter() - started, 1),
                      **{k: v / max(1, len(shard)) for k, v in sums.items()}}
            if self.validation is not None:
                self.model.eval()
                metrics = evaluate(self.lentil, self.validation, self.index, self.args.candidates, show_progress_bar=False).model
                record["validation"] = {k: metrics[k] for k in ("ndcg@10", "recall@100", "mrr@10", "slot_map")}
                score = metrics["ndcg@10"]
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
        if self.args.calibrate and self.validation is not None and state["best_epoch"] is not None and self.accelerator.is_main_process:
            self._calibrate_best()
        return state

    def _calibrate_best(self) -> None:
        """Fits Platt scaling of the kept (best) model on the validation split and saves it in place."""
        if self.args.train_encoder:
            best = SpicyLentil.from_pretrained(self.output)
        else:  # same encoder: reuse the loaded one instead of loading it again
            best = SpicyLentil(SpicyLentilModel(self.lentil.config), self.lentil.encoder)
            best.model.load_state_dict(load_file(self.output / "model.safetensors"))
        calibration = fit_calibration(best, self.validation, self.index, self.args.candidates, self.first_stage)
        best.save_pretrained(self.output, save_encoder=self.args.train_encoder)
        (self.output / "calibration.json").write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")

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
        meta = {"state": state, "param_groups": optimizer_state["param_groups"], "scheduler": self.scheduler.state_dict(),
                "args": asdict(self.args)}
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
