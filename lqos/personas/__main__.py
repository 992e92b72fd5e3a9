"""``python -m lqos.personas --persona NAME --port N --secret-file PATH``: one persona's process."""

import sys
from pathlib import Path

from lqos.daemon.childproc import child_argument_parser, run_child
from lqos.personas.protocol import PersonaFactory
from lqos.personas.registry import discover_personas


def main(argv: list[str]) -> None:
    parser = child_argument_parser("lqos-bufferbloat household persona")
    parser.add_argument("--persona", required=True)
    parser.add_argument("--secret-file", required=True)
    options = parser.parse_args(argv)
    persona = discover_personas().get(options.persona)
    if persona is None:
        parser.error(f"no persona named {options.persona!r} is installed")
    secret = Path(options.secret_file).read_bytes()
    run_child(f"persona:{persona.name}", options,
              lambda reactor, send_to_parent: PersonaFactory(persona, secret, reactor, send_to_parent))


if __name__ == "__main__":
    main(sys.argv[1:])
