"""Usage errors of the command line: what a parser does not take, said without typed values.

Every parser of ``obshell-sdk`` is a :class:`Parser`: an unknown option is named by its name
alone, with the option likely meant or why it is not taken there; a password option says
where passwords go; argparse's own messages lose what was typed as a value (it may be a
password in the wrong place).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Callable, NoReturn, Optional

__all__ = ["PASSWORD_VARIABLES", "Parser", "UsageError"]

#: The variables a password comes from (the command line has no password option).
PASSWORD_VARIABLES = ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors show option names, never typed values.

    Each parser says itself what it does not take, with its own usage and the option likely
    meant (argparse leaves that to the top level, whose usage names none of a command's
    options); ``hints`` say why an option is not taken here and what to give instead;
    ``words``, what to give instead of a word typed where VERSION goes (``upgrade ob ...``);
    ``instead(word, given)``, added unredacted after a word none of ACTION's (``task 11``).
    """

    def __init__(self, *args: Any, hints: Optional[dict[str, str]] = None,
                 words: Optional[dict[str, str]] = None, takes: Optional[dict[str, str]] = None,
                 instead: Optional[Callable[[str, list[str]], str]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hints, self.words = dict(hints or {}), dict(words or {})
        self.takes, self.instead = dict(takes or {}), instead  # takes: {"list": "no ID"}
        self.given: list[str] = []
        self.flags: Optional[frozenset[str]] = None  # of the whole tree: see _flags_below

    def parse_known_args(self, args: Optional[Iterable[str]] = None,
                         namespace: Any = None) -> tuple[Any, list[str]]:
        """Parse ``args``; anything this parser does not take is a usage error, said here.

        A command's own error (its subparser's) comes with the options given at this level
        that this level does not take, said first: one is often the very option it missed.
        """
        self.given = sys.argv[1:] if args is None else list(args)
        if self.flags is None:  # the top level: its commands are parsed after it
            _flags_below(self)
        try:
            parsed, extras = super().parse_known_args(self.given, namespace)
        except UsageError as exc:
            unknown = self._unknown(to_positional=False) if exc.prog != self.prog else []
            if not unknown:
                raise
            self._say(self._unrecognized(unknown), below=exc)
        word = getattr(parsed, "version", None)
        if word in self.words:  # a known word, not a value typed: said as it was
            self._say(f"VERSION: '{word}' is not a version: {self.words[word]}")
        if extras:
            self._say(self._unrecognized(extras, parsed))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Usage and a redacted ``message``, then exit 2 (:class:`UsageError`).

        The options given here that this parser does not take are said first.
        """
        invalid = "invalid choice" in message
        unknown = self._unknown(to_positional=invalid)
        typed = _password_option(self.given)
        if typed or (invalid and unknown):
            # A password option is said first: its value may have taken an argument's place
            # ("required"). An unknown option before a subcommand (or ACTION) has its value
            # taken for it: the "invalid choice" is that value.
            self._say(self._unrecognized([typed, *unknown] if typed else unknown))
        message = _dash_value(message, self.given, self._option_string_actions)
        message += _close_choice(message, self._actions)
        hint = ("\nVERSION and RELEASE are two arguments, e.g. 4.2.1.1 101000062023110109.el7 "
                "(not 4.2.1.1-101000062023110109.el7)" if message.endswith("RELEASE") else "")
        choice = re.search(r"argument ACTION: invalid choice: '([^']*)'", message)
        hint += self.instead(choice.group(1), self.given) if choice and self.instead else ""
        self._say(*([self._unrecognized(unknown)] if unknown else []), _redact(message) + hint)

    def _say(self, *texts: str, below: Optional[UsageError] = None) -> NoReturn:
        """Raise :class:`UsageError` saying ``texts``, then what a command (``below``) said.

        A password option's refusal is said first, wherever it was typed; the usage is the
        command's, the innermost.
        """
        said = [f"{self.prog}: error: {text}" for text in texts] + (below.said if below else [])
        said.sort(key=lambda line: _NO_PASSWORD not in line)
        raise UsageError(said, below.usage if below else self.format_usage(),
                         below.prog if below else self.prog)

    def _unknown(self, *, to_positional: bool) -> list[str]:
        """The options given to this parser that it does not take (see :func:`_unknown_options`).

        ``to_positional``: those before the first positional only, as after an invalid choice;
        else those before the command.
        """
        choices = [str(c) for a in self._actions if not a.option_strings and (
            to_positional or a.nargs == argparse.PARSER) for c in a.choices or ()]
        return _unknown_options(self.given, self._option_string_actions, choices,
                                to_positional=to_positional, flags=self.flags or frozenset())

    def _unrecognized(self, tokens: Sequence[str], parsed: Any = None) -> str:
        """What this parser does not take: options by name (and the likely one), no values.

        Values are counted, with what the command takes (:meth:`_takes`), never shown. A word
        after ``--`` is a value, however it starts (``--`` itself only when alone); the word
        after a password option is its value, said with it.
        """
        values = set(self.given[self.given.index("--"):]) if "--" in self.given else set()
        pairs = [(before, after) for before, after in zip(self.given, self.given[1:])
                 if "=" not in before and before.startswith("-")]
        secret = {after for before, after in pairs if _password_like(before)}
        known = self._option_string_actions
        values |= {after for before, after in pairs if _action(before, known) is None
                   and before[:2] not in known and before not in (self.flags or ())
                   and not self._an_option(after)}
        shown = [self._option(t) for t in tokens
                 if t.startswith("-") and t != "-" and t not in values | secret]
        extra = sum(t in values or not t.startswith("-") or t == "-" for t in tokens
                    if t not in secret and t != "--") or (0 if shown else len(tokens))
        said = [f"unrecognized arguments: {' '.join(dict.fromkeys(shown))}"] if shown else []
        if extra:
            said.append(f"{self._takes(parsed)}; {extra} extra value{'s' if extra > 1 else ''}"
                        " given (values are not shown)")
        return "; ".join(said)

    def _takes(self, parsed: Any) -> str:
        """What the command takes besides options, as its usage names them.

        ``task show takes one ID``: the command's own words read (a choice, such as ``show``)
        are named with it, and what that word takes (:attr:`takes`), if the parser says.
        """
        name = self.prog.removeprefix("obshell-sdk ")
        rest: list[tuple[object, object]] = []  # the usage's names and their nargs
        for action in self._actions:
            if action.option_strings:
                continue
            if action.nargs == argparse.PARSER:  # what comes next is the command's own
                return f"{name} takes options, then {action.metavar or 'a command'}"
            word = getattr(parsed, action.dest, None)
            if not rest and action.choices and word in action.choices:
                name += f" {word}"  # one of the command's own words, never a value typed
                if word in self.takes:
                    return f"{name} takes {self.takes[word]}"
            else:
                rest.append((action.metavar or action.dest.upper(), action.nargs))
        if not rest:
            return f"{name} takes options only"
        if len(rest) == 1 and rest[0][1] in (None, "?"):
            return f"{name} takes {'at most ' if rest[0][1] else ''}one {rest[0][0]}"
        return f"{name} takes " + " ".join(f"[{m}]" if n == "?" else str(m) for m, n in rest)

    def _option(self, token: str) -> str:
        """An unknown option as said: its name only, and why it is not here or what is near."""
        name = _option_named(token)
        if _password_like(token):
            return f"{name} ({_NO_PASSWORD})"
        if not name.startswith("-") or " " in name:  # -xSECRET: not a name to look up
            return name
        hint = self.hints.get(name) or self._near(name)
        return f"{name} ({hint})" if hint else name

    def _an_option(self, word: str) -> bool:
        """Whether ``word``, after an unknown option, is an option meant (or one near it).

        Such a word is named, not counted as the unknown option's value: ``--jsn --verbos``
        names both. A value shaped like one of our options is no secret worth hiding.
        """
        name = word.split("=", 1)[0]
        return name.startswith("--") and (
            name in self._option_string_actions or name in self.hints
            or name in (self.flags or ()) or bool(self._near(name)))

    def _near(self, name: str) -> str:
        """``did you mean --wait?``; of an option not taken here, why (``--hots``: ``--host``)."""
        near = _closest(name, [*self._option_string_actions, *self.hints])
        hint = f" {self.hints[near]}" if near in self.hints else ""
        return f"did you mean {near}?{hint}" if near else ""


#: The options a password or other secret is looked for under, in any case (``--password``,
#: ``--agent-passwd``, ``--pwd``, ``--agent-pw``, ``--passphrase``, ``--token``, ``--secret``;
#: mysql's ``-p``, ``-pSECRET``, ``-P``), and misspellings of them (``--pasword``): no parser
#: has one, and each says so (:data:`_NO_PASSWORD`). What follows one is its value, however
#: it starts.
_PASSWORD_OPTION = re.compile(r"--.*(pass|pwd|secret|token).*|--(.*[-_])?pw([-_].*)?|-p.*",
                              re.IGNORECASE)
_PASSWORD_NAMES = ("--password", "--passwd", "--agent-password", "--root-password")
_NO_PASSWORD = (f"there is no password option, on purpose, as a command line is seen by other "
                f"users and kept in shell history: set {PASSWORD_VARIABLES[0]} (root@sys) or "
                f"{PASSWORD_VARIABLES[1]}, or leave them unset to be asked on a terminal")


def _password_like(word: str) -> bool:
    """Whether ``word`` is a password option (:data:`_PASSWORD_OPTION`) or a misspelled one."""
    name = word.partition("=")[0]
    return bool(_PASSWORD_OPTION.fullmatch(name) or (name.startswith("--") and (
        difflib.get_close_matches(name.lower(), _PASSWORD_NAMES, n=1, cutoff=0.8))))


def _password_option(given: Sequence[str]) -> Optional[str]:
    """The first password option of ``given`` (before any ``--``), as typed; else None."""
    before = given[:given.index("--")] if "--" in given else given
    return next((word for word in before if _password_like(word)), None)


def _unknown_options(given: Sequence[str], known: dict[str, argparse.Action],
                     choices: Sequence[str] = (), *, to_positional: bool = True,
                     flags: frozenset[str] = frozenset()) -> list[str]:
    """The options of ``given`` that are none of ``known``.

    As argparse reads them: a unique prefix of a long option is that option; an option's
    value follows it unless given with ``=``; ``-vX`` is ``-v`` and more. Up to ``--``, a word
    of ``choices`` (the command: what follows is its own) and, with ``to_positional``, any
    positional. A word after an unknown option is taken for its value, not a positional,
    unless it is one of ``choices`` (argparse took it for the command, after an invalid choice
    the options after it went unread); one that starts with '-' too, unless the unknown option
    is one of ``flags`` (an option some command takes without a value) and no password option.
    """
    unknown, at = list[str](), 0
    while at < len(given) and given[at] != "--":
        word, at = given[at], at + 1
        if word == "-" or not word.startswith("-"):
            if to_positional or word in choices:
                break
            continue
        name, eq, _ = word.partition("=")
        action = _action(name, known)
        if action is None and not name.startswith("--") and name[:2] in known:
            continue  # a short option with its value or more short options stuck to it
        if action is None:
            unknown.append(word)
        after = given[at] if at < len(given) else "-"
        if not eq and (action.nargs != 0 if action is not None else _password_like(word) or (
                after not in (*choices, "--") and (not after.startswith("-") or
                                                   word not in flags))):
            at += 1  # its value
    return unknown


def _flags_below(top: Parser) -> None:
    """Give ``top`` and every parser below it the options any of them takes without a value.

    An unknown option that is none of these may take a value: a word after it that starts
    with '-' is taken for that value and never shown (``--secret-key --S3cr3t``).
    """
    tree, flags = [top], set[str]()
    for parser in tree:  # grows as it is read: each command's parsers, added at its end
        flags.update(o for o, a in parser._option_string_actions.items() if a.nargs == 0)
        tree += [p for a in parser._actions if isinstance(a, argparse._SubParsersAction)
                 for p in a.choices.values() if isinstance(p, Parser)]
    for parser in tree:
        parser.flags = frozenset(flags)


def _action(name: str, known: dict[str, argparse.Action]) -> Optional[argparse.Action]:
    """The action of option ``name`` as argparse reads it (a long one's unique prefix too)."""
    return known.get(name) or next(
        (a for o, a in known.items() if name.startswith("--") and o.startswith(name)), None)


def _dash_value(message: str, given: Sequence[str], known: dict[str, argparse.Action]) -> str:
    """``message``, or, of an option whose value starts with '-', how to give that value.

    argparse reads such a value as an option: it says the option expected one argument, or,
    the value being the prefix of two options, names it as an ambiguous option.
    """
    expected = re.fullmatch(r"argument (\S+): expected one argument", message)
    ambiguous = re.match(r"ambiguous option: ([^=\s]+)", message)
    for before, word in zip(["", *given], given):
        if before == "--":
            break
        action = None if "=" in before else _action(before, known)
        one = action if action is not None and action.nargs is None else None  # one value
        if ambiguous and word.partition("=")[0] == ambiguous.group(1):  # the first one read
            return _no_value(one) if one else message
        if expected and one and "/".join(one.option_strings) == expected.group(1) and (
                word.startswith("-")):
            return _no_value(one)
    return message


def _no_value(action: argparse.Action) -> str:
    return (f"argument {'/'.join(action.option_strings)}: expected one argument (a value that "
            f"starts with '-' is read as an option: give it as {action.option_strings[-1]}=VALUE)")


def _close_choice(message: str, actions: Sequence[argparse.Action]) -> str:
    """`` (did you mean info?)`` after an invalid choice; the choices of a missing ``ACTION``."""
    missing = message.partition("the following arguments are required: ")[2]
    for action in actions:
        if action.choices and not action.option_strings and action.metavar == missing:
            return f" (choose from {', '.join(map(repr, action.choices))})"
    typed = re.search(r"invalid choice: '([^']*)'", message)
    choices = re.findall(r"[\w.-]+", message.partition("(choose from ")[2])
    near = _closest(typed.group(1), choices) if typed else ""
    return f" (did you mean {near}?)" if near else ""  # a choice: never the text typed


def _closest(typed: str, known: Iterable[str]) -> str:
    """The long option or choice closest to ``typed``, if one is close; else ""."""
    near = difflib.get_close_matches(typed, [k for k in known if not k.startswith("-")
                                             or k.startswith("--")], n=1, cutoff=0.7)
    return near[0] if near else ""


class UsageError(SystemExit):
    """A usage error: exit 2, as argparse's own.

    ``said``: its lines (``prog: error: ...``), ``message`` them joined, ``bare`` the same
    without their ``prog: error:`` (as ``--json``'s document says every error); ``usage``: the
    usage of the command they are about; ``prog``: the parser that said it first. Nothing is
    written yet: the caller writes ``usage`` and ``message`` on stderr.
    """

    def __init__(self, said: Sequence[str], usage: str = "", prog: str = "") -> None:
        super().__init__(2)
        self.said, self.usage, self.prog = list(said), usage, prog
        self.message = "\n".join(self.said)
        self.bare = "\n".join(line.partition(": error: ")[2] or line for line in self.said)


#: A value as argparse shows it, its repr: in double quotes when it holds a single quote only.
_REPR = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""


def _redact(message: str) -> str:
    # "invalid choice: 'x'", "invalid float value: 'x'", "ignored explicit argument 'x'",
    # "ambiguous option: --x=VALUE could match" (VALUE as typed, newlines too):
    # name the problem, not the text.
    message = re.sub(rf"(invalid [\w ]*?(?:choice|value)): {_REPR}", r"\1", message)
    message = re.sub(r"(ambiguous option: [^=\s]+)=.*( could match )", r"\1\2", message,
                     flags=re.DOTALL)
    return re.sub(rf"(ignored explicit argument) {_REPR}", r"\1 (not shown)", message)


def _option_named(token: str) -> str:
    """An unknown option by its name alone: ``--x=SECRET`` and ``-xSECRET`` show ``--x``, ``-x``."""
    name = token.split("=", 1)[0]
    if not name.startswith("--") and len(name) > 2:  # -pSECRET: the rest may be a value
        return f"{name[:2]} (what follows it is not shown)"
    return name
