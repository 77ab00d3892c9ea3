"""The reference firmware's C++ frame receiver + CRC (host build with g++) against the Python codec."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from hwlat.mcu import proto

FW = Path(__file__).resolve().parent.parent / "firmware" / "tflm_reference"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gxx = shutil.which("g++")
    if not gxx:
        pytest.skip("g++ is not installed")
    exe = tmp_path_factory.mktemp("fw") / "proto_host_test"
    subprocess.run([gxx, "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{FW / 'src'}",
                    str(FW / "host_test" / "proto_host_test.cc"), str(FW / "src" / "hwlat_proto.cc"), "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    return exe


def test_cpp_receiver_agrees_with_python_frames(receiver: Path) -> None:
    P = proto()
    big = bytes(range(256)) * 3
    damaged = bytearray(P.encode_frame(P.RUN, 9, b"x" * 12))
    damaged[-2] ^= 1
    hello = b"\x01\x00"
    stream = (b"line noise\xa5" + P.encode_frame(P.HELLO, 7, hello) + bytes(damaged)
              + P.encode_frame(P.UPLOAD_CHUNK, 8, big) + P.encode_frame(P.STATS, 10)
              + P.encode_frame(P.UPLOAD_CHUNK, 11, b"\0" * 4000))  # longer than the 2 KiB buffer
    out = subprocess.run([str(receiver)], input=stream, capture_output=True, timeout=30, check=True).stdout
    assert out.decode().splitlines() == [
        f"frame type=1 seq=7 len=2 crc={zlib.crc32(hello):08x}",
        "crc_error seq=9",
        f"frame type=3 seq=8 len=768 crc={zlib.crc32(big):08x}",
        f"frame type=6 seq=10 len=0 crc={0:08x}",
        "too_long",
    ]
