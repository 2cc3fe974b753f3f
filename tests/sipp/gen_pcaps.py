#!/usr/bin/env python3
"""Writes the RTP media the SIPp scenarios play into the call (play_pcap_audio).

Each file is one caller's audio as a single RTP stream: one SSRC, sequence numbers and
timestamps that run on without gaps, a packet every 20 ms. The caller's sound is PCMU
(payload type 0): silence, low line noise, or a speech-like signal. Keys are sent either as
RFC 4733 telephone-events (payload type 101) or in-band as PCMU dual tones.

A key as RFC 4733: the first packet has the marker bit; an update follows every 20 ms with
the event's growing duration; then three end packets carrying the final duration and the
event's own timestamp. No audio packets are sent while an event lasts, as a phone does.

A key in-band: 100 ms of the two DTMF frequencies, then 60 ms of background.

Frames are Ethernet / IPv4 / UDP in a classic little-endian pcap (link type 1), the
framing SIPp's pcap player reads; it rewrites the addresses and ports, paces the packets by
their capture times and sends the RTP header as written here.

Python 3 standard library only, so a fresh CI machine can run it:

    python3 gen_pcaps.py OUTDIR                 # every file the scenarios use
    python3 gen_pcaps.py OUTDIR --list          # the same, and print what each holds
    python3 gen_pcaps.py OUTDIR --name my.pcap --keys "1@7,0@10" [--inband]
                         [--duration 30] [--background silence|noise|speech]

--keys is a comma-separated list of KEYS@SECONDS: the keys (0-9, *, #, A-D) typed one after
another, starting that many seconds into the stream.
"""

import argparse
import math
import os
import random
import struct
import sys

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
PT_PCMU = 0
PT_EVENT = 101

# One key takes 160 ms: 100 ms of tone or event updates, then 60 ms (the three RFC 4733 end
# packets, or in-band background) before the next one.
KEY_ON_FRAMES = 5
KEY_GAP_FRAMES = 3
EVENT_VOLUME = 10  # -10 dBm0, as RFC 4733 section 2.3.4 describes the power

DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_LAYOUT = ("123A", "456B", "789C", "*0#D")
# RFC 4733 section 3.2 event codes.
EVENT_CODES = {str(d): d for d in range(10)}
EVENT_CODES.update({"*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15})


# ---------------------------------------------------------------- G.711 mu-law


def linear_to_ulaw(sample):
    """Encodes one 16-bit linear sample as a G.711 mu-law byte."""
    bias = 0x84
    clip = 32635
    sample = int(sample)
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(-sample if sample < 0 else sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_to_linear(byte):
    """Decodes one mu-law byte (used by the self-check only)."""
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


ULAW_TABLE = bytes(linear_to_ulaw(s) for s in range(-32768, 32768))


def encode_frame(samples):
    return bytes(ULAW_TABLE[max(-32768, min(32767, int(round(s)))) + 32768] for s in samples)


# ---------------------------------------------------------------- the caller's sound


def dbm0_amplitude(level_dbm0):
    """Peak amplitude, on the 16-bit scale, of a sine at level_dbm0. A full-scale mu-law sine
    (peak 32636) is +3.17 dBm0, so 0 dBm0 peaks at about 22700."""
    return 22700.0 * 10 ** (level_dbm0 / 20.0)


SPEECH_LOOP_SECONDS = 10  # whole periods of the pitch glide and the syllable rhythm
_speech_loop = []


def speech_loop():
    """Ten seconds of a speech-like sound, made once and then repeated: a voice gliding
    between 100 and 220 Hz with harmonics shaped by formants near 500 and 1500 Hz, in
    syllables of 400 ms with every fourth one silent, at about -20 dBm0, over faint noise."""
    if not _speech_loop:
        rng = random.Random(4733)
        phase = 0.0
        level = dbm0_amplitude(-20.0) * 0.5
        for n in range(SPEECH_LOOP_SECONDS * SAMPLE_RATE):
            t = n / SAMPLE_RATE
            f0 = 160.0 + 60.0 * math.sin(2 * math.pi * 0.7 * t)
            phase += 2 * math.pi * f0 / SAMPLE_RATE
            syllable = 0.5 - 0.5 * math.cos(2 * math.pi * 2.5 * t)
            if int(t * 2.5) % 4 == 3:
                syllable = 0.0
            value = 0.0
            if syllable > 0.0:
                for h in range(1, 12):
                    freq = f0 * h
                    gain = 1.0 / (1.0 + ((freq - 500.0) / 250.0) ** 2)
                    gain += 0.5 / (1.0 + ((freq - 1500.0) / 300.0) ** 2)
                    value += gain * math.sin(h * phase)
            _speech_loop.append(level * syllable * value + rng.gauss(0.0, 20.0))
    return _speech_loop


class Background:
    """Endless caller sound, produced 20 ms at a time; seeded, so files are reproducible."""

    def __init__(self, kind, seed=4733):
        self.kind = kind
        self.rng = random.Random(seed)
        self.n = 0

    def frame(self):
        start = self.n
        self.n += FRAME_SAMPLES
        if self.kind == "silence":
            return [0.0] * FRAME_SAMPLES
        if self.kind == "noise":
            # Line noise around -55 dBm0.
            sigma = dbm0_amplitude(-55.0) / math.sqrt(2)
            return [self.rng.gauss(0.0, sigma) for _ in range(FRAME_SAMPLES)]
        loop = speech_loop()
        return [loop[(start + i) % len(loop)] for i in range(FRAME_SAMPLES)]


def dtmf_frame(key, index):
    """Frame `index` (0-based) of the in-band tone for `key`: two sines at -7 dBm0 each."""
    row = next(r for r, line in enumerate(DTMF_LAYOUT) if key in line)
    col = DTMF_LAYOUT[row].index(key)
    lo, hi = DTMF_ROWS[row], DTMF_COLS[col]
    amp = dbm0_amplitude(-7.0)
    start = index * FRAME_SAMPLES
    w_lo = 2 * math.pi * lo / SAMPLE_RATE
    w_hi = 2 * math.pi * hi / SAMPLE_RATE
    return [
        amp * (math.sin(w_lo * (start + i)) + math.sin(w_hi * (start + i)))
        for i in range(FRAME_SAMPLES)
    ]


# ---------------------------------------------------------------- the RTP stream


class RtpStream:
    """One RTP sender: a 20 ms tick, one SSRC, continuous sequence numbers and timestamps."""

    def __init__(self, ssrc=0x484F544C, seq=11000, ts=160000):
        self.ssrc = ssrc
        self.seq = seq
        self.ts0 = ts
        self.tick = 0
        self.packets = []  # (seconds since the first packet, RTP packet bytes)
        self.talkspurt = True

    def now_ts(self):
        return (self.ts0 + self.tick * FRAME_SAMPLES) & 0xFFFFFFFF

    def emit(self, pt, marker, ts, payload):
        second = (0x80 if marker else 0) | pt
        header = struct.pack("!BBHII", 0x80, second, self.seq & 0xFFFF, ts, self.ssrc)
        self.packets.append((self.tick * FRAME_SECONDS, header + payload))
        self.seq += 1
        self.tick += 1

    def audio(self, samples):
        self.emit(PT_PCMU, self.talkspurt, self.now_ts(), encode_frame(samples))
        self.talkspurt = False

    def event(self, key):
        """One key as RFC 4733: KEY_ON_FRAMES updates, then three end packets."""
        code = EVENT_CODES[key]
        start_ts = self.now_ts()
        duration = 0
        for i in range(KEY_ON_FRAMES):
            duration += FRAME_SAMPLES
            payload = struct.pack("!BBH", code, EVENT_VOLUME & 0x3F, duration)
            self.emit(PT_EVENT, i == 0, start_ts, payload)
        for _ in range(KEY_GAP_FRAMES):
            payload = struct.pack("!BBH", code, 0x80 | (EVENT_VOLUME & 0x3F), duration)
            self.emit(PT_EVENT, False, start_ts, payload)
        # The next audio packet starts a new talkspurt after the event.
        self.talkspurt = True


def build_stream(duration_s, keys, inband, background):
    """keys: list of (start second, key string). Returns the RtpStream."""
    stream = RtpStream()
    bg = Background(background)
    total = int(round(duration_s / FRAME_SECONDS))
    pending = sorted(keys)
    while stream.tick < total:
        if pending and stream.tick * FRAME_SECONDS >= pending[0][0] - 1e-9:
            _, seq = pending.pop(0)
            for key in seq:
                if inband:
                    for i in range(KEY_ON_FRAMES):
                        bg.frame()  # keep the background's own clock running
                        stream.audio(dtmf_frame(key, i))
                    for _ in range(KEY_GAP_FRAMES):
                        stream.audio(bg.frame())
                else:
                    for _ in range(KEY_ON_FRAMES + KEY_GAP_FRAMES):
                        bg.frame()
                    stream.event(key)
            continue
        stream.audio(bg.frame())
    return stream


# ---------------------------------------------------------------- pcap framing


def ip_checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame_udp(payload, ident, src=(127, 0, 0, 1), dst=(127, 0, 0, 1), sport=6000, dport=6002):
    src_b, dst_b = bytes(src), bytes(dst)
    udp_len = 8 + len(payload)
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, 17, udp_len)
    udp_wo_sum = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    udp_sum = ip_checksum(pseudo + udp_wo_sum) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, udp_sum) + payload
    # IPv4: version 4, 20-byte header, don't fragment, TTL 64, protocol 17 (UDP).
    ip_wo_sum = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0x4000, 64, 17, 0, src_b, dst_b
    )
    ip = ip_wo_sum[:10] + struct.pack("!H", ip_checksum(ip_wo_sum)) + ip_wo_sum[12:]
    eth = bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + struct.pack("!H", 0x0800)
    return eth + ip + udp


def write_pcap(path, stream, epoch=1_700_000_000):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (t, rtp) in enumerate(stream.packets):
            frame = frame_udp(rtp, i + 1)
            usec_total = int(round(t * 1_000_000))
            sec, usec = divmod(usec_total, 1_000_000)
            f.write(struct.pack("<IIII", epoch + sec, usec, len(frame), len(frame)))
            f.write(frame)


# ---------------------------------------------------------------- what the scenarios use

# name: (seconds, [(start second, keys)], in-band, background)
STANDARD = {
    # Short single keys for hand tests.
    "dtmf_1.pcap": (1.5, [(0.5, "1")], False, "silence"),
    "dtmf_0.pcap": (1.5, [(0.5, "0")], False, "silence"),
    # The menu walk: listen to the welcome (6 s), press 1 (English) during the language
    # question, then 0 (an advisor) during the main menu; keep talking until the hotline
    # hangs up after "advisors busy" and "goodbye" (about 18 s in).
    "menu_1_0.pcap": (40.0, [(7.0, "1"), (10.0, "0")], False, "noise"),
    # The same walk in-band, over a speech-like sound, so a detector that mistakes voice
    # for keys (talk-off) sends the call elsewhere.
    "menu_1_0_inband.pcap": (40.0, [(7.0, "1"), (10.0, "0")], True, "speech"),
    # Order status: 2 (Deutsch), 2 (order status), the order number 123456#, then, during
    # "anything else?", 2 (no, goodbye).
    "order_2_2_123456#_2.pcap": (
        60.0,
        [(7.0, "2"), (10.0, "2"), (12.0, "123456#"), (26.0, "2")],
        False,
        "speech",
    ),
    # The caller who only listens: 5 s of line noise.
    "listen.pcap": (5.0, [], False, "noise"),
}


def parse_keys(text):
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        keys, _, at = item.partition("@")
        keys = keys.upper()
        bad = [k for k in keys if k not in EVENT_CODES]
        if not keys or bad or not at:
            raise ValueError("expected KEYS@SECONDS like '123#@7.5', found '%s'" % item)
        out.append((float(at), keys))
    return out


def describe(name, stream, spec):
    seconds, keys, inband, background = spec
    where = ", ".join("%s at %.2fs" % (k, t) for t, k in keys) or "no keys"
    mode = "in-band" if inband else "RFC 4733"
    count = len(stream.packets)
    return "%-28s %5.1fs %-8s %-9s %4d packets; %s" % (
        name, seconds, background, mode, count, where
    )


def self_check():
    # The mu-law encoder against G.711's fixed points and a round trip.
    assert linear_to_ulaw(0) == 0xFF
    assert linear_to_ulaw(-1) == 0x7F
    assert linear_to_ulaw(32767) == 0x80 and linear_to_ulaw(-32768) == 0x00
    for s in range(-32000, 32000, 97):
        back = ulaw_to_linear(linear_to_ulaw(s))
        assert abs(back - s) <= max(4, abs(s) // 16), (s, back)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--list", action="store_true", help="print what each file holds")
    parser.add_argument("--name", help="write one file with this name instead of the standard set")
    parser.add_argument("--keys", default="", help="KEYS@SECONDS[,KEYS@SECONDS...]")
    parser.add_argument("--inband", action="store_true", help="send keys as in-band tones")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of RTP")
    parser.add_argument("--background", choices=("silence", "noise", "speech"), default="noise")
    args = parser.parse_args(argv)

    self_check()
    os.makedirs(args.outdir, exist_ok=True)
    if args.name:
        try:
            keys = parse_keys(args.keys)
        except ValueError as e:
            parser.error(str(e))
        todo = {args.name: (args.duration, keys, args.inband, args.background)}
    else:
        todo = STANDARD
    for name, spec in todo.items():
        stream = build_stream(*spec)
        write_pcap(os.path.join(args.outdir, name), stream)
        if args.list or args.name:
            print(describe(name, stream, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
