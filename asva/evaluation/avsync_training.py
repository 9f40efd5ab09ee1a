"""The papers' classifier trained with the papers' recipe (`sweeps/train_sync_classifier.py classifier.kind=avsyncd`).

As AVSyncD trains its classifier (lzhangbj/ASVA configs/avsync/vggss_sync_contrast.yaml,
avsync/data.py, avsync/models/sync_contrastive_trainer.py; the defaults of `classifier.avsyncd`):

- an example is one training video: K = num_clips (21) clips of 2 s starting shift_seconds (0.2 s)
  apart, the first at a uniformly drawn time ("random-compact"), so a video needs 2 + (K - 1) x 0.2 =
  6 s. A clip's frame i is the video's frame nearest to i / 6 s into the clip (12 frames at 6 FPS);
  its audio is its exact 2 s, as ImageBind's spectrogram; every clip is flipped left-right with
  probability 1/2;
- phi of every audio clip with every video clip of the example, [K, K]; the loss is the mean of the
  cross-entropy of each audio over the K videos (A2V) and of each video over the K audios (V2A), both
  with temperature tau = 0.1: the shifts go both ways, up to (K - 1) x 0.2 = 4 s;
- AdamW (betas 0.9 / 0.999, eps 1e-8) with decoupled weight decay 0.01 on every weight, biases and
  batch norms included (the release has one parameter group), the gradients clipped to global norm 1
  before each step (`weight_decay`, `max_grad_norm`; scripts/avsync_train.py); lr 2e-4 after a
  100-step linear warm-up, then constant, global batch 32, 40,000 steps (the released checkpoint);
- precision: AVSyncD trains in fp16 mixed precision (accelerate: a dynamic loss scale, the gradients
  unscaled before clipping). Here the classifier trains on the GPU when there is one, in bf16 autocast
  over fp32 weights, as every job does on CUDA (asva/models/placement.py), and in fp32 on the CPU.
  bf16 keeps fp32's exponent range, so no loss scale is needed and the clipping sees the true
  gradients. Its products are rounded more coarsely than fp16's (8 bits of mantissa against 11; not
  measured here against an fp16 run), while the weights, the optimizer state and the loss stay fp32;
- the test: per test video, K clips whose starts are evenly spaced over [0, duration - 2 s]
  ("uniform"); A2V (V2A) accuracy is how often an audio (a video) scores highest with its own clip.
  Chance is 1/K; the release reaches 40.76% / 40.86% on VGGSS.

Videos too short for the K clips are left out, as AVSyncD's loader skips them. Frames come from the
whole decoded videos on the data.fps grid (12 FPS keeps the nearest frame within 1/24 s of its time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from asva.config.schema import AVSyncDClassifierConfig, DataConfig
from asva.data.audio import fbank
from asva.data.dataset import VideoEntry, decode_entries, read_event_times, read_lines
from asva.data.windows import VideoWindows
from asva.errors import DataError
from asva.evaluation.avsync_classifier import AVSyncDClassifier, checkpoint_payload, mel_spectrogram, video_input
from asva.evaluation.protocol import EVAL_FPS
from asva.models.placement import CPU_FP32, Placement
from asva.training.loop import LoopSpec, train_loop

CLIP_SECONDS = 2.0
CLIP_FRAMES = round(CLIP_SECONDS * EVAL_FPS)


def whole_videos(root: Path, split: str, data: DataConfig, cache_dir: Path) -> VideoWindows:
    """Every video of `split` under `root` (AVSync15 layout), decoded whole on the data.fps grid, cached."""
    classes = read_lines(root / "classes.txt")
    split_file = root / f"{split}.txt"
    entries = [
        VideoEntry(Path(line).stem, line.split("/")[0], root / "videos" / line) for line in read_lines(split_file)
    ]
    clips = decode_entries(
        f"{root.name}-{split}", entries, classes, data, cache_dir, split_file, read_event_times(root), windows=True
    )
    if not isinstance(clips.windows, VideoWindows):
        raise DataError("classifier.kind=avsyncd: trains on videos decoded into memory (data.decode=memory)")
    return clips.windows


@dataclass
class Spans:
    """The rows of a VideoWindows long enough for K clips, each as (first frame, frames, first sample)."""

    windows: VideoWindows
    rows: list[int]
    needed_seconds: float

    @classmethod
    def at_least(cls, windows: VideoWindows, seconds: float) -> Spans:
        frames = (windows.row_starts - 1 + windows.clip_frames).tolist()
        return cls(windows, [row for row, count in enumerate(frames) if count / windows.fps >= seconds - 1e-6], seconds)

    def __len__(self) -> int:
        return len(self.rows)

    def seconds(self, index: int) -> float:
        row = self.rows[index]
        return (int(self.windows.row_starts[row]) - 1 + self.windows.clip_frames) / self.windows.fps

    def clips(self, index: int, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 2-s clips of span `index` at `starts` (s into the span): frames [K, 12, H, W, 3] uint8
        (nearest frame of each time i / 6 s into the clip) and audio [K, 2 s of samples]."""
        windows, row = self.windows, self.rows[index]
        video, first = int(windows.row_video[row]), int(windows.row_first[row])
        count = int(windows.row_starts[row]) - 1 + windows.clip_frames
        times = starts[:, None].double() + torch.arange(CLIP_FRAMES, dtype=torch.float64) / EVAL_FPS
        nearest = torch.round(times * windows.fps).long().clamp(0, count - 1)
        frames = windows.frames[int(windows.frame_offset[video]) + first + nearest]
        audio_start = int(windows.audio_offset[video]) + round(first * windows.sample_rate / windows.fps)
        first_samples = audio_start + torch.round(starts.double() * windows.sample_rate).long()
        samples = first_samples[:, None] + torch.arange(round(CLIP_SECONDS * windows.sample_rate))
        return frames, windows.audio[samples]


def shifted_starts(num_clips: int, shift_seconds: float, room: float, draw: float) -> torch.Tensor:
    """Training ("random-compact"): num_clips starts shift_seconds apart, the first at draw x room."""
    return draw * room + shift_seconds * torch.arange(num_clips, dtype=torch.float64)


def uniform_starts(num_clips: int, seconds: float) -> torch.Tensor:
    """Test ("uniform"): num_clips starts evenly spaced over [0, seconds - 2], both ends included."""
    return torch.linspace(0.0, seconds - CLIP_SECONDS, num_clips, dtype=torch.float64)


def example_inputs(
    spans: Spans, index: int, starts: torch.Tensor, image_size: int, flips: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mel [K, 1, 128, 204], video [K, 3, 12, S, S]) of one example's clips; `flips` [K] bool."""
    frames, audio = spans.clips(index, starts)
    video = video_input(frames, image_size)
    if flips is not None:
        video = torch.where(flips[:, None, None, None, None], video.flip(-1), video)
    return mel_spectrogram(fbank(audio, spans.windows.sample_rate)), video


def pair_logits(
    classifier: AVSyncDClassifier, mel: torch.Tensor, video: torch.Tensor, placement: Placement = CPU_FP32
) -> torch.Tensor:
    """mel [B, K, ...], video [B, K, ...] (on the host) -> phi [B, K audio, K video] in fp32, computed on
    the placement's device and in its precision."""
    batch, count = mel.shape[:2]
    mel, video = placement.to_device(mel), placement.to_device(video)
    with placement.autocast():
        audio = classifier.audio_encoder(mel.flatten(0, 1)).reshape(batch, count, -1)
        visual = classifier.video_encoder(video.flatten(0, 1)).reshape(batch, count, -1)
        return classifier.pair_scores(audio, visual).float()


def both_directions_loss(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean of the A2V (each audio over the videos) and V2A (each video over the audios) cross-entropies."""
    batch, count = logits.shape[:2]
    target = torch.arange(count, device=logits.device).repeat(batch)
    audio_to_video = F.cross_entropy(logits.reshape(batch * count, count) / temperature, target)
    video_to_audio = F.cross_entropy(logits.transpose(1, 2).reshape(batch * count, count) / temperature, target)
    return (audio_to_video + video_to_audio) / 2


def recipe_spec(recipe: AVSyncDClassifierConfig) -> LoopSpec:
    """The training loop's settings of the recipe: AdamW, the warm-up, the gradient clipping."""
    return LoopSpec(
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        steps=recipe.steps,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
    )


@torch.no_grad()
def held_out_accuracy(
    classifier: AVSyncDClassifier, spans: Spans, recipe: AVSyncDClassifierConfig, placement: Placement = CPU_FP32
) -> tuple[float, float]:
    """(A2V, V2A) accuracy over the test videos' uniformly spaced clips."""
    classifier.eval()
    correct = torch.zeros(2)
    for index in range(len(spans)):
        mel, video = example_inputs(
            spans, index, uniform_starts(recipe.num_clips, spans.seconds(index)), recipe.image_size
        )
        logits = pair_logits(classifier, mel[None], video[None], placement)[0].cpu()
        own = torch.arange(recipe.num_clips)
        correct += torch.tensor(
            [(logits.argmax(dim=1) == own).float().mean(), (logits.argmax(dim=0) == own).float().mean()]
        )
    return tuple((correct / len(spans)).tolist())


def train_avsyncd(
    train: VideoWindows,
    test: VideoWindows,
    recipe: AVSyncDClassifierConfig,
    dataset: str,
    seed: int = 0,
    placement: Placement = CPU_FP32,
) -> dict:
    """Train the classifier with `recipe` on the placement's device; returns its checkpoint payload (on
    the CPU, with losses and test accuracy)."""
    needed = CLIP_SECONDS + (recipe.num_clips - 1) * recipe.shift_seconds
    train_spans, test_spans = Spans.at_least(train, needed), Spans.at_least(test, needed)
    for split, spans in (("train", train_spans), ("test", test_spans)):
        if not len(spans):
            raise DataError(
                f"classifier.avsyncd: no {split} video lasts the {needed:g} s that {recipe.num_clips} clips of 2 s, "
                f"{recipe.shift_seconds:g} s apart need "
                f"(the embedded benchmark: data.synthetic.video_seconds={needed:g})"
            )
    torch.manual_seed(seed)
    classifier = AVSyncDClassifier(tuple(recipe.widths), recipe.image_size).to(placement.device)

    def loss(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        examples = []
        for index in idx.tolist():
            room = train_spans.seconds(index) - needed
            draw = float(torch.rand(1, generator=generator, dtype=torch.float64))
            flips = torch.rand(recipe.num_clips, generator=generator) < 0.5
            examples.append(
                example_inputs(
                    train_spans,
                    index,
                    shifted_starts(recipe.num_clips, recipe.shift_seconds, room, draw),
                    recipe.image_size,
                    flips,
                )
            )
        mel, video = (torch.stack(parts) for parts in zip(*examples))
        return both_directions_loss(pair_logits(classifier, mel, video, placement), recipe.temperature)

    losses = train_loop(
        classifier,
        list(classifier.parameters()),
        loss,
        len(train_spans),
        recipe_spec(recipe),
        seed,
        desc="AVSyncD synchronization classifier (contrastive, both directions)",
    )
    a2v, v2a = held_out_accuracy(classifier, test_spans, recipe, placement)
    extra = {
        "losses": losses,
        "test_accuracy_a2v": a2v,
        "test_accuracy_v2a": v2a,
        "chance": 1.0 / recipe.num_clips,
        "num_train_videos": len(train_spans),
        "num_test_videos": len(test_spans),
    }
    return checkpoint_payload(classifier.cpu(), recipe, dataset, extra)
