"""``python -m panet_mm COMMAND [args]``: the ``panet-*`` console scripts where ``bin/`` is not on PATH.

Why it exists: an install with ``pip install --target`` or ``--user`` leaves the scripts off PATH, and
``python -m panet_mm`` said "No module named panet_mm.__main__". The commands run the same tools
(:mod:`panet_mm.tools_entry`); ``python -m panet_mm`` alone lists them.
"""
from __future__ import annotations

import sys
from typing import List, Optional

from panet_mm.tools_entry import TOOLS, run_tool

USAGE = '''usage: python -m panet_mm {train,test,restore,convert} [args]

  train    CONFIG [--work-dir DIR] [--resume] [--amp] ...         (tools/train.py; also panet-train)
  test     CONFIG CHECKPOINT [--out metrics.json] ...             (tools/test.py; also panet-test)
  restore  --config CONFIG --checkpoint CKPT INPUT OUTPUT ...     (tools/restore.py; also panet-restore)
  convert  SRC.pt DST.pth [--arch panet|paedsr] ...               (convert_official_ckpt.py; also panet-convert)

Each COMMAND --help lists its options.'''


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command named first in ``argv`` (default: this process's arguments); return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ('-h', '--help'):
        print(USAGE)
        return 0
    if args[0] not in TOOLS:
        print(f"{USAGE}\n\nerror: unknown command '{args[0]}'; choose one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    return run_tool(args[0], args[1:], prog=f'python -m panet_mm {args[0]}')


if __name__ == '__main__':
    sys.exit(main())
