"""Real recordings with human beat annotations, for the analysis benchmark (issue 21).

WHY beside the rendered corpus: a network trained on renders can learn the renderer instead of
music. These are excerpts played and produced by people. Their audio licences do not allow
committing them (mostly CC BY-NC-SA 4.0, some unknown), so no audio is in git: ``make recordings``
(``python benchmarks/recordings.py [--mirror DIR]``) copies each file from its repository at a
pinned commit into ``benchmarks/.cache/recordings/<owner>+<repo>/<path>`` (``KAPSULE_RECORDINGS``
names another folder). A piece whose files are absent is printed as absent, never skipped in silence.

Two groups:

* ``judge``: the outside judge's 8 excerpts (issue 21) from mirdata's test resources, the ISMIR 2021
  tempo/beat/downbeat tutorial and carat's examples. **Evaluation only**: nothing is trained, tuned
  or chosen on them. The four mirdata items carry 3-5 annotated beats in mirdata; their full
  annotations come from CPJKU/beat_this_annotations (MIT), whose first rows are the same.
* ``own``: the FMP book's chapter 6 excerpts (Meinard Müller, audio from RWC, SMD and commercial
  recordings, licence unclear: local evaluation only) and madmom's ``sample.wav`` (CC BY-NC-SA 4.0).
  Split into ``tuning`` and ``test`` by the hash of the name (``corpus_specs.part``), fixed before
  any change to the analysis; the test part is scored, never studied piece by piece.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.corpus_specs import part

CACHE = Path(__file__).resolve().parent / ".cache" / "recordings"

MIRDATA = ("mir-dataset-loaders/mirdata", "b95bf3893616ff16082beed7869f144bb711c163")
TUTORIAL = ("TempoBeatDownbeat/tutorial", "afb0ee92db696e5444ce51ddf1646d137059c79a")
CARAT = ("mrocamora/carat", "ea8340f40a2010f8f9ab786c44d7a6240897f001")
BEAT_THIS = ("CPJKU/beat_this_annotations", "c3c47fd37d3074d9f8119f18bbf460f909609f22")
FMP = ("zachserviss/CSC475_Chord_Generator", "5460e614391bac581213bac2d9f23f8f8e7e22cb")
MADMOM = ("CPJKU/madmom", "27f032e8947204902c675e5e341a3faf5dc86dae")


@dataclass(frozen=True)
class File:
    """One file of a pinned repository."""

    repo: str
    commit: str
    path: str

    def local(self) -> Path:
        root = Path(os.environ.get("KAPSULE_RECORDINGS", CACHE))
        return root / self.repo.replace("/", "+") / self.path


@dataclass(frozen=True)
class Recording:
    name: str
    group: str  # "judge" (evaluation only) or "own"
    what: str
    licence: str
    audio: File
    beats: File  # one beat a line: time, then optionally its position in the bar (1 = bar line)
    bars: File | None = None  # bar lines, one time a line, when the beats file has no positions

    @property
    def part(self) -> str:
        return "eval only" if self.group == "judge" else part(self.name)

    def files(self) -> list[File]:
        return [self.audio, self.beats] + ([self.bars] if self.bars else [])

    def present(self) -> bool:
        return all(f.local().is_file() for f in self.files())

    def truth(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(beat times, bar-line times or None when the annotation has no bar positions)."""
        times, labels = _read(self.beats.local())
        if self.bars is not None:
            return times, _read(self.bars.local())[0]
        if not labels or any(label == "" for label in labels):
            return times, None
        ones = [t for t, label in zip(times, labels, strict=True) if label.split(".")[-1] == "1"]
        return times, np.asarray(ones)


def _read(path: Path) -> tuple[np.ndarray, list[str]]:
    times, labels = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = [p.strip('"') for p in re.split(r"[\s,;]+", line.strip()) if p]
        if not parts or parts[0].startswith("#"):
            continue
        try:
            times.append(float(parts[0]))
        except ValueError:
            continue
        labels.append(parts[1] if len(parts) > 1 else "")
    return np.asarray(times), labels


def _mir(path: str) -> File:
    return File(*MIRDATA, f"tests/resources/mir_datasets/{path}")


def _fmp(name: str) -> File:
    return File(*FMP, f"data/C6/FMP_C6_{name}")


NC_SA = "CC BY-NC-SA 4.0 (mirdata's LICENSE_INFO)"
FMP_LICENCE = "FMP notebooks' data, licence unclear (local evaluation only)"

RECORDINGS: tuple[Recording, ...] = (
    Recording(
        "judge-ballroom-waltz",
        "judge",
        "dance-band waltz, 3/4 (Ballroom Media-105901)",
        NC_SA,
        _mir("ballroom/B_1.0/audio/Waltz/Media-105901.wav"),
        File(*BEAT_THIS, "ballroom/annotations/beats/ballroom_Media-105901.beats"),
    ),
    Recording(
        "judge-gtzan-country",
        "judge",
        "country band, 84 BPM (GTZAN country.00000)",
        "GTZAN: unknown (mirdata found none)",
        _mir("gtzan_genre/gtzan_genre/genres/country/country.00000.wav"),
        File(*BEAT_THIS, "gtzan/annotations/beats/gtzan_country_00000.beats"),
    ),
    Recording(
        "judge-hainsworth-rockpop",
        "judge",
        "rock/pop, 100 BPM (Hainsworth 001)",
        NC_SA,
        _mir("hainsworth/H_1.0/audio/hains001.flac"),
        File(*BEAT_THIS, "hainsworth/annotations/beats/hainsworth_001.beats"),
    ),
    Recording(
        "judge-simac-greek",
        "judge",
        "Greek popular song, 74 BPM, beats only (SIMAC 01)",
        NC_SA,
        _mir("simac/S_1.0/audio/simac_01_H_mikri_Rallou.flac"),
        File(*BEAT_THIS, "simac/annotations/beats/simac_greek_01_H_mikri_Rallou.beats"),
    ),
    Recording(
        "judge-jpop-shampoo",
        "judge",
        "J-pop with drums, 100 BPM 4/4 (tutorial easy_example)",
        "CC BY-NC-SA 4.0 (tutorial repository)",
        File(*TUTORIAL, "book/assets/ch2_basics/audio/easy_example.flac"),
        File(*TUTORIAL, "book/assets/ch2_basics/audio/easy_example.beats"),
    ),
    Recording(
        "judge-guitar-choros",
        "judge",
        "solo classical guitar, rubato, 77 BPM 2/4 (tutorial expressive_example)",
        "CC BY-NC-SA 4.0 (tutorial repository)",
        File(*TUTORIAL, "book/assets/ch2_basics/audio/expressive_example.flac"),
        File(*TUTORIAL, "book/assets/ch2_basics/audio/expressive_example.beats"),
    ),
    Recording(
        "judge-candombe",
        "judge",
        "candombe drum ensemble, 135 BPM 4/4 (tutorial nonwestern_example)",
        "CC BY-NC-SA 4.0 (tutorial repository)",
        File(*TUTORIAL, "book/assets/ch2_basics/audio/nonwestern_example.flac"),
        File(*TUTORIAL, "book/assets/ch2_basics/audio/nonwestern_example.beats"),
    ),
    Recording(
        "judge-samba-tamborim",
        "judge",
        "samba tamborim, 130 BPM 2/4 (BRID via carat)",
        "BRID: CC BY-NC-SA 4.0 (mirdata); carat's code is MIT",
        File(*CARAT, "examples/data/samba/[0216] S2-TB2-03-SE.wav"),
        File(*CARAT, "examples/data/samba/[0216] S2-TB2-03-SE.beats.txt"),
    ),
    Recording(
        "fmp_Borodin-sec39_RWC",
        "own",
        "Borodin string quartet, 3/4 (RWC)",
        FMP_LICENCE,
        _fmp("Audio_Borodin-sec39_RWC.wav"),
        _fmp("Audio_Borodin-sec39_RWC_quarter.csv"),
        _fmp("Audio_Borodin-sec39_RWC_measure.csv"),
    ),
    Recording(
        "fmp_Debussy_SMD189",
        "own",
        "Debussy violin sonata, 2/4 (SMD)",
        FMP_LICENCE,
        _fmp("Audio_Debussy_SonataViolinPianoGMinor-02-sec135-SMD189.wav"),
        _fmp("Audio_Debussy_SonataViolinPianoGMinor-02-sec135-SMD189_quarter.csv"),
        _fmp("Audio_Debussy_SonataViolinPianoGMinor-02-sec135-SMD189_measure.csv"),
    ),
    Recording(
        "fmp_HappyBirthday",
        "own",
        "Happy Birthday, sung and played, 3/4",
        FMP_LICENCE,
        _fmp("Audio_HappyBirthday.wav"),
        _fmp("Audio_HappyBirthday_tactus.csv"),
        _fmp("Audio_HappyBirthday_measure.csv"),
    ),
    Recording(
        "fmp_Shostakovich_Waltz2_IncreasingTempo",
        "own",
        "Shostakovich waltz, orchestra, tempo rising, 3/4",
        FMP_LICENCE,
        _fmp("Audio_Shostakovich_Waltz-02-Theme_IncreasingTempo.wav"),
        _fmp("Audio_Shostakovich_Waltz-02-Theme_IncreasingTempo_beat.csv"),
        _fmp("Audio_Shostakovich_Waltz-02-Theme_IncreasingTempo_measure.csv"),
    ),
    Recording(
        "fmp_Chopin_Op68No3",
        "own",
        "Chopin mazurka, piano, beats only",
        FMP_LICENCE,
        _fmp("Audio_Chopin.wav"),
        _fmp("Audio_Chopin.csv"),
    ),
    Recording(
        "fmp_Faure_Op15_SMD126",
        "own",
        "Fauré piano quartet, beats only (SMD)",
        FMP_LICENCE,
        _fmp("Audio_Faure_Op015-01-sec0-12_SMD126.wav"),
        _fmp("Audio_Faure_Op015-01-sec0-12_SMD126.csv"),
    ),
    Recording(
        "fmp_Poulenc_Valse_SMD114",
        "own",
        "Poulenc valse, piano, beats only (SMD)",
        FMP_LICENCE,
        _fmp("Audio_Poulenc_Valse-sec0-15_SMD114.wav"),
        _fmp("Audio_Poulenc_Valse-sec0-15_SMD114.csv"),
    ),
    Recording(
        "fmp_PorUnaCabeza",
        "own",
        "Por una cabeza, tango, beats only",
        FMP_LICENCE,
        _fmp("Audio_PorUnaCabeza.wav"),
        _fmp("Audio_PorUnaCabeza_quarter.csv"),
    ),
    Recording(
        "fmp_Queen_AnotherOne_Singing",
        "own",
        "Queen, Another One Bites the Dust (sung part), beats only",
        FMP_LICENCE,
        _fmp("Audio_Queen_AnotherOneBitesTheDust-Singing.wav"),
        _fmp("Audio_Queen_AnotherOneBitesTheDust-Singing.csv"),
    ),
    Recording(
        "fmp_Brahms_HD5_Ormandy_sec35-53",
        "own",
        "Brahms Hungarian dance 5, orchestra, rubato, beats only",
        FMP_LICENCE,
        _fmp("F19_Brahms_Ormandy_sec35-53.wav"),
        _fmp("F19_Brahms_Ormandy_sec35-53.csv"),
    ),
    Recording(
        "madmom_sample",
        "own",
        "pop/rock snippet, 2.8 s, one bar (madmom tests)",
        "madmom data: CC BY-NC-SA 4.0",
        File(*MADMOM, "tests/data/audio/sample.wav"),
        File(*MADMOM, "tests/data/annotations/sample.beats"),
    ),
)


def fetch(mirror: Path | None = None) -> int:
    """Copy every missing file into the cache from its repository at its pinned commit: from GitHub
    (raw.githubusercontent.com), or from bare mirrors ``<mirror>/<owner>+<repo>/repo`` (``git show``)
    on a machine without GitHub. Returns how many files are still missing."""
    import subprocess
    import urllib.parse
    import urllib.request

    missing = 0
    for f in dict.fromkeys(f for r in RECORDINGS for f in r.files()):
        out = f.local()
        if out.is_file():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if mirror is not None:
                git_dir = mirror / f.repo.replace("/", "+") / "repo"
                data = subprocess.run(
                    ["git", f"--git-dir={git_dir}", "show", f"{f.commit}:{f.path}"],
                    check=True,
                    capture_output=True,
                ).stdout
            else:
                url = f"https://raw.githubusercontent.com/{f.repo}/{f.commit}/{urllib.parse.quote(f.path)}"
                with urllib.request.urlopen(url, timeout=60) as response:
                    data = response.read()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"missing {f.repo}@{f.commit[:8]}:{f.path} ({exc})")
            missing += 1
            continue
        out.write_bytes(data)
        print(f"fetched {f.repo}@{f.commit[:8]}:{f.path} ({len(data):,} bytes)")
    return missing


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Fill benchmarks/.cache/recordings from the pinned repositories."
    )
    parser.add_argument(
        "--mirror", type=Path, help="bare mirrors <DIR>/<owner>+<repo>/repo instead of GitHub"
    )
    sys.exit(1 if fetch(parser.parse_args().mirror) else 0)
