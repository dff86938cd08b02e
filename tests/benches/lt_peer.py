"""libtorrent peers for the side-by-side benchmark (tests/benches/swarm.rs), run with Debian's
python3 and its python3-libtorrent (libtorrent 2.0). Loopback only: no DHT, trackers, LSD, UPnP.

    lt_peer.py torrent DIR OUT.torrent           make a v1 torrent of the files under DIR
    lt_peer.py seed TORRENT DIR PORT STATS [--upload-limit B]
                                                 seed DIR (already complete); write its upload
                                                 total to STATS (JSON) every 0.25 s; run until
                                                 killed
    lt_peer.py leech TORRENT OUT PORT PEERS [--encrypt]
                                                 download into OUT from PEERS (host:port,…);
                                                 print one JSON line (seconds, CPU, peak RSS)
                                                 when complete, then keep seeding until killed

Settings are libtorrent's defaults, except what loopback needs: every peer is on 127.0.0.1, so
several connections per IP are allowed; --encrypt forces RC4 on every connection.
"""

import json
import os
import resource
import sys
import time

import libtorrent as lt


def session(port, extra=None):
    s = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    }
    s.update(extra or {})
    return lt.session(s)


def make_torrent(folder, out):
    fs = lt.file_storage()
    lt.add_files(fs, folder)
    t = lt.create_torrent(fs)
    lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(folder)))
    with open(out, "wb") as f:
        f.write(lt.bencode(t.generate()))


def seed(torrent, folder, port, stats, upload_limit):
    extra = {"upload_rate_limit": upload_limit} if upload_limit else {}
    ses = session(port, extra)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.dirname(os.path.abspath(folder))
    h = ses.add_torrent(params)
    # Checked in full first (not seed mode, which would hash each piece on its first upload
    # and slow the first download down).
    while not h.status().is_seeding:
        time.sleep(0.05)
    print("ready", flush=True)
    while True:
        st = h.status()
        tmp = stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"uploaded": st.total_payload_upload}, f)
        os.replace(tmp, stats)
        time.sleep(0.25)


def leech(torrent, out, port, peers, encrypt):
    extra = {}
    if encrypt:
        extra = {
            "out_enc_policy": lt.enc_policy.forced,
            "in_enc_policy": lt.enc_policy.forced,
            "allowed_enc_level": lt.enc_level.rc4,
        }
    ses = session(port, extra)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = out
    started = time.monotonic()
    h = ses.add_torrent(params)
    for p in peers:
        host, _, pport = p.rpartition(":")
        h.connect_peer((host, int(pport)))
    last_connect = time.monotonic()
    while not h.status().is_seeding:
        time.sleep(0.02)
        if time.monotonic() - last_connect > 1.0:
            # Peers started after us (or not yet listening) are asked again.
            for p in peers:
                host, _, pport = p.rpartition(":")
                h.connect_peer((host, int(pport)))
            last_connect = time.monotonic()
    took = time.monotonic() - started
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": took,
                "cpu_seconds": ru.ru_utime + ru.ru_stime,
                "peak_rss_kib": ru.ru_maxrss,
                "downloaded": h.status().total_payload_download,
            }
        ),
        flush=True,
    )
    while True:
        time.sleep(1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "torrent":
        make_torrent(args[0], args[1])
    elif cmd == "seed":
        limit = int(args[5]) if len(args) > 5 and args[4] == "--upload-limit" else 0
        seed(args[0], args[1], int(args[2]), args[3], limit)
    elif cmd == "leech":
        peers = [p for p in args[3].split(",") if p]
        leech(args[0], args[1], int(args[2]), peers, "--encrypt" in args[4:])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
