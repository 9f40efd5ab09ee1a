"""Reading and writing video files with their sound (PyAV), the one place that touches containers."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from asva.errors import DataError
from asva.files import atomic_path


@dataclass
class Clip:
    """A decoded clip: frames [T, H, W, 3] uint8 at `fps`, mono float32 audio at `sample_rate`."""

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    start: float = 0.0  # where in the video the clip starts (s)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> None:
    """Write H.264 video (+ AAC audio) so that browsers and the MLflow UI can play it.

    `audio` is [samples] (mono) or [channels, samples] (1 or 2 channels).
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if audio is not None:
        audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        # Byte-identical files from identical frames, in any process on any machine: x264's
        # macroblock tree made the same input encode differently from run to run (decoded frames
        # off by up to 5 levels; measured on 32-px clips), and its thread count (1.5 x the CPUs
        # by default) changes the bitstream with the machine. Near-lossless CRF 8 needs neither.
        video.options = {"crf": "8", "preset": "fast", "x264-params": "mbtree=0"}
        video.codec_context.thread_count = 1
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=sample_rate)
            audio_stream.layout = _layout(audio)
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())  # the frames the encoder still holds
        if audio_stream is not None:
            samples = np.ascontiguousarray(np.clip(audio, -1.0, 1.0))
            _write_audio(container, audio_stream, samples, "fltp", _layout(audio), sample_rate)


def _write_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    samples: np.ndarray,
    sample_format: str,
    layout: str,
    sample_rate: int,
) -> None:
    """Encode `samples` (laid out as PyAV's `sample_format` wants) as one frame from time 0, then
    what the encoder still holds, into `container`."""
    frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout=layout)
    frame.sample_rate = sample_rate
    # A pts lets the encoder mark its priming samples (an edit list), so the sound is not
    # shifted late by the AAC encoder delay when read back.
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode())


def _layout(audio: np.ndarray) -> str:
    if audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must be [samples] or [1 or 2 channels, samples], got shape {audio.shape}")
    return "mono" if audio.shape[0] == 1 else "stereo"


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM wav; `audio` is [samples] or [channels, samples] in [-1, 1]."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).round().astype(np.int16)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate)
        stream.layout = _layout(audio)
        _write_audio(container, stream, np.ascontiguousarray(pcm.T.reshape(1, -1)), "s16", _layout(audio), sample_rate)


def audio_beside(path: Path) -> Path | None:
    """The separate sound track of a video (`clip.wav` beside `clip.mp4`), if there is one."""
    wav = path.with_suffix(".wav")
    return wav if wav.is_file() else None


@contextmanager
def _named_errors(path: Path, unreadable: str = "unreadable media") -> Iterator[None]:
    """Every failure to read `path` inside the block as one DataError naming the file."""
    try:
        yield
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{path}: {unreadable} ({error})") from None


def _separate_sound(container: av.container.InputContainer, path: Path) -> Path | None:
    """The .wav beside a video that replaces its sound track, if any; DataError for a file with no
    video stream or no sound at all."""
    if not container.streams.video:
        raise DataError("no video stream")
    separate = audio_beside(path)
    if not container.streams.audio and separate is None:
        raise DataError("no audio stream (and no .wav beside the video)")
    return separate


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The whole sound of a media file (a video's first audio track, or a wav), mono at `sample_rate`."""
    path = Path(path)
    with _named_errors(path, "unreadable audio"), av.open(str(path)) as container:
        if not container.streams.audio:
            raise DataError("no audio stream")
        return _decode_audio(container, sample_rate)


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM (wav files are 16-bit) to float in [-1, 1]; float samples pass unchanged."""
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128) / 128
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    return samples.astype(np.float32)


def _decode_audio(container: av.container.InputContainer, sample_rate: int) -> np.ndarray:
    stream = container.streams.audio[0]
    chunks = []
    first_time = None
    for frame in container.decode(stream):
        if first_time is None:
            first_time = float(frame.time or 0.0)
        data = _to_float(frame.to_ndarray())
        if frame.format.is_packed:  # interleaved [1, samples * channels]
            data = data.reshape(-1, len(frame.layout.channels)).T
        chunks.append(data)
    if not chunks:
        raise DataError("audio track holds no samples")
    audio = np.concatenate(chunks, axis=1).mean(axis=0)  # stereo -> mono by averaging channels
    source_rate = stream.rate or sample_rate
    # Put sample 0 at t = 0 of the video: a track that starts late is padded, an early one trimmed.
    offset = int(round((first_time or 0.0) * source_rate))
    audio = np.pad(audio, (offset, 0)) if offset > 0 else audio[-offset:]
    if source_rate != sample_rate:
        audio = AF.resample(torch.from_numpy(audio), source_rate, sample_rate).numpy()
    return audio


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """Center crop to a square, then resize to size x size."""
    _, height, width, _ = frames.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(frames[:, top : top + side, left : left + side]).permute(0, 3, 1, 2)
    if side != size:
        square = F.interpolate(square.float(), size=(size, size), mode="bilinear", antialias=True)
        square = square.round().clamp(0, 255).to(torch.uint8)
    return square.permute(0, 2, 3, 1).numpy()


def _decode_media(path: Path, sample_rate: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(frame times [T] sorted, frames in that order, mono audio from the video's t = 0) of a file."""
    with _named_errors(path):
        with av.open(str(path)) as container:
            separate_audio = _separate_sound(container, path)
            stream = container.streams.video[0]
            times, images = [], []
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                times.append(float(frame.pts * stream.time_base))
                images.append(frame.to_ndarray(format="rgb24"))
            if separate_audio is None:
                container.seek(0)
                audio = _decode_audio(container, sample_rate)
        if separate_audio is not None:
            audio = read_audio(separate_audio, sample_rate)
    if not images:
        raise DataError(f"{path}: no decodable frames")
    order = np.argsort(times)
    return np.asarray(times)[order], [images[i] for i in order], audio


def _frames_at(times: np.ndarray, images: list[np.ndarray], wanted: np.ndarray) -> np.ndarray:
    # Each target time takes the last frame shown at or before it, the way a player displays it
    # (a millisecond of slack absorbs rounding in container timestamps).
    index = np.searchsorted(times, wanted + 1e-3, side="right") - 1
    return np.stack([images[i] for i in index])


def _audio_span(audio: np.ndarray, path: Path, start: float, seconds: float, sample_rate: int) -> np.ndarray:
    first = int(round(start * sample_rate))
    wanted = int(round(seconds * sample_rate))
    span = audio[first : first + wanted]
    if len(span) < wanted:  # encoders pad the last AAC frame differently: pad, don't fail
        if len(span) < 0.9 * wanted:
            raise DataError(f"{path}: audio shorter than the {seconds:g} s requested from {start:g} s")
        span = np.pad(span, (0, wanted - len(span)))
    return span.astype(np.float32)


def read_clip(
    path: str | Path, fps: int, seconds: float, frame_size: int, sample_rate: int = 16000, start: float = 0.0
) -> Clip:
    """Decode `seconds` of video from `start`, frames resampled to `fps` by their timestamps.

    Raises DataError (naming the file) for anything unreadable or too short.
    """
    path = Path(path)
    times, images, audio = _decode_media(path, sample_rate)
    duration = times[-1] + 1.0 / max(fps, 1)
    if start < times[0] - 1e-3 or start + seconds > duration + 1e-3:
        raise DataError(f"{path}: shorter than the {seconds:g} s clip requested from {start:g} s")
    frames = _frames_at(times, images, start + np.arange(round(seconds * fps)) / fps)
    return Clip(
        frames=_resize(frames, frame_size),
        audio=_audio_span(audio, path, start, seconds, sample_rate),
        fps=fps,
        sample_rate=sample_rate,
        start=start,
    )


def read_video(
    path: str | Path,
    fps: int,
    min_seconds: float,
    frame_size: int,
    sample_rate: int = 16000,
    start: float = 0.0,
    end: float | None = None,
) -> Clip:
    """Every frame from `start` to `end` (None: the end of the video or its sound, whichever comes
    first) on the `fps` grid start + i / fps, with the sound of those frames' span.

    Training draws its clips from this: a clip of T frames from grid frame j spans
    [start + j / fps, start + (j + T) / fps], always inside [start, end]. DataError (naming the file)
    for anything unreadable or shorter than `min_seconds` from `start`.
    """
    path = Path(path)
    times, images, audio = _decode_media(path, sample_rate)
    frame_step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
    last = min(times[-1] + frame_step, len(audio) / sample_rate)
    if end is not None:
        last = min(last, end)
    count = int(np.floor((last - start) * fps + 1e-3))
    if start < times[0] - 1e-3 or count < round(min_seconds * fps):
        raise DataError(f"{path}: shorter than the {min_seconds:g} s clip requested from {start:g} s")
    frames = _frames_at(times, images, start + np.arange(count) / fps)
    return Clip(
        frames=_resize(frames, frame_size),
        audio=_audio_span(audio, path, start, count / fps, sample_rate),
        fps=fps,
        sample_rate=sample_rate,
        start=start,
    )


@dataclass
class MediaInfo:
    """What a container says about itself, read from packet headers without decoding a frame."""

    duration: float  # seconds from the first to past the last video frame
    fps: float  # median frame rate from the packet timestamps
    width: int
    height: int
    num_frames: int
    has_audio: bool  # an audio track in the container, or a .wav beside it
    frame_interval_spread: float  # (longest - shortest) / median frame interval: 0 for constant rate


def probe(path: str | Path) -> MediaInfo:
    """Container metadata of a video; DataError (naming the file) when it is not a readable video."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError("no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            has_audio = bool(container.streams.audio) or audio_beside(path) is not None
            times = sorted(
                float(packet.pts * stream.time_base)
                for packet in container.demux(stream)
                if packet.pts is not None and packet.size > 0
            )
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except (av.error.FFmpegError, OSError, ValueError, IndexError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable media container ({error})") from None
    if not times:
        raise DataError(f"{path}: the video stream holds no frames")
    intervals = np.diff(times)
    intervals = intervals[intervals > 0]
    median = float(np.median(intervals)) if len(intervals) else 0.0
    fps = 1.0 / median if median else 0.0
    spread = float((intervals.max() - intervals.min()) / median) if len(intervals) > 1 else 0.0
    return MediaInfo(
        duration=times[-1] - times[0] + median,
        fps=fps,
        width=width,
        height=height,
        num_frames=len(times),
        has_audio=has_audio,
        frame_interval_spread=spread,
    )


def read_frames(path: str | Path, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a video, (times [T] s, frames [T, H, W, 3] uint8) shrunk to at most `max_side`.

    For analysis (curation), not training: no crop, no resampling. DataError on a broken stream.
    """
    path = Path(path)
    times, images = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            scale = min(1.0, max_side / max(stream.codec_context.width, stream.codec_context.height, 1))
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if scale < 1.0:
                    frame = frame.reformat(
                        width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale))
                    )
                times.append(float(frame.pts * stream.time_base))
                images.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{path}: corrupt video stream ({error})") from None
    if not images:
        raise DataError(f"{path}: no decodable frames")
    order = np.argsort(times)
    return np.asarray(times)[order] - min(times), np.stack([images[i] for i in order])


# Audio decoded beyond a span on both sides, so resampling and AAC frame overlap never touch its edges.
AUDIO_MARGIN_SECONDS = 0.5


@functools.lru_cache(maxsize=1 << 16)
def media_seconds(path: str | Path) -> float:
    """How long a file's video plays (s), from its headers: no frame is decoded. DataError if unreadable.
    Remembered per process: training asks it of a video at every clip it draws from it."""
    path = Path(path)
    with _named_errors(path), av.open(str(path)) as container:
        if not container.streams.video:
            raise DataError("no video stream")
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    raise DataError(f"{path}: the container does not say how long it is")


def read_span(
    path: str | Path,
    fps: int,
    seconds: float,
    frame_size: int,
    sample_rate: int = 16000,
    start: float = 0.0,
    video_frames: int | None = None,
) -> Clip:
    """`read_clip` that seeks: only the frames and sound around [start, start + seconds] are decoded.

    Video is decoded from the keyframe at or before `start`; the sound from AUDIO_MARGIN_SECONDS
    before it to as long after, placed by its timestamps. This is how training streams clips out of
    long videos. `video_frames`: only the first frames of the span (the sound still spans `seconds`),
    for a clip whose latents are cached. DataError (naming the file) for anything unreadable or too short.
    """
    path = Path(path)
    end = start + seconds
    frame_count = round(seconds * fps) if video_frames is None else video_frames
    video_end = end if video_frames is None else start + video_frames / fps
    with _named_errors(path):
        with av.open(str(path)) as container:
            separate_audio = _separate_sound(container, path)
            if separate_audio is None:  # first: from the file's start it decodes without a seek
                audio, audio_origin = _decode_audio_span(container, start, end, sample_rate)
            times, images = _decode_video_span(container, start, video_end)
        if separate_audio is not None:
            audio, audio_origin = read_audio(separate_audio, sample_rate), 0.0
    if not images or times[0] > start + 1e-3 or times[-1] + 1.0 / max(fps, 1) < video_end - 1e-3:
        raise DataError(f"{path}: shorter than the {seconds:g} s clip requested from {start:g} s")
    frames = _frames_at(times, images, start + np.arange(frame_count) / fps)
    return Clip(
        frames=_resize(frames, frame_size),
        audio=_audio_span(audio, path, start - audio_origin, seconds, sample_rate),
        fps=fps,
        sample_rate=sample_rate,
        start=start,
    )


def _decode_video_span(container: av.container.InputContainer, start: float, end: float) -> tuple[np.ndarray, list]:
    """(times, frames) from the last frame shown at `start` to the last one before `end`, in time order."""
    stream = container.streams.video[0]
    container.seek(int(max(start, 0.0) / stream.time_base), stream=stream, backward=True, any_frame=False)
    times, images = [], []
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        time = float(frame.pts * stream.time_base)
        if time >= end:
            break
        if times and time <= start + 1e-3 and times[-1] <= start + 1e-3:
            times.clear(), images.clear()  # only the last frame at or before `start` is needed
        times.append(time)
        images.append(frame.to_ndarray(format="rgb24"))
    order = np.argsort(times)
    return np.asarray(times)[order], [images[i] for i in order]


def _decode_audio_span(
    container: av.container.InputContainer, start: float, end: float, sample_rate: int
) -> tuple[np.ndarray, float]:
    """(mono audio at `sample_rate`, the time of its first sample) covering [start, end] with margins."""
    stream = container.streams.audio[0]
    first = max(start - AUDIO_MARGIN_SECONDS, 0.0)
    if first > 0:  # from the file's start, decode as `read_clip` does (a seek would lose the priming)
        container.seek(int(first / stream.time_base), stream=stream, backward=True, any_frame=False)
    chunks, origin = [], None
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        if origin is None:
            origin = float(frame.time)
        if frame.time > end + AUDIO_MARGIN_SECONDS:
            break
        data = _to_float(frame.to_ndarray())
        if frame.format.is_packed:
            data = data.reshape(-1, len(frame.layout.channels)).T
        chunks.append(data)
    if not chunks:
        raise DataError("audio track holds no samples")
    audio = np.concatenate(chunks, axis=1).mean(axis=0)
    source_rate = stream.rate or sample_rate
    # Start on a time both sample grids share (a multiple of 1 / gcd of the rates), so the resampled
    # samples fall on the same instants as those of the whole file resampled from t = 0.
    shared = math.gcd(source_rate, sample_rate)
    aligned = max(math.ceil(round(origin * shared, 6)), 0) / shared
    audio = audio[int(round((aligned - origin) * source_rate)) :]
    if source_rate != sample_rate:
        audio = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), source_rate, sample_rate).numpy()
    return audio, aligned
