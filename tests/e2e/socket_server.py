#!/usr/bin/env python3
"""Test servers of tests/e2e/test_sockets.sh (independent of Tide).

feed PORTFILE INPUT: listen on a free port (written to PORTFILE), accept
  one connection, send INPUT's bytes in small chunks (lines split across
  sends), then close.
collect PORTFILE OUTPUT: listen on a free port, accept one connection,
  write everything received to OUTPUT until the peer closes.
"""
import socket
import sys


def listen(portfile):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    s.settimeout(120)
    conn, _ = s.accept()
    return conn


def main():
    cmd, portfile, path = sys.argv[1:4]
    conn = listen(portfile)
    if cmd == "feed":
        data = open(path, "rb").read()
        for i in range(0, len(data), 7):
            conn.sendall(data[i:i + 7])
        conn.close()
    else:
        with open(path, "wb") as f:
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                f.write(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
