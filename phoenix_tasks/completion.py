"""`phoenix completion bash`: a bash completion script for the verb CLI.

The verbs, their actions and each one's flags are read from the task collection (each
task's own argument parser: which flags exist, which take a value), not from a table
kept by hand; the stacks (directories of PHOENIX_STACKS_DIR holding a phoenix.json)
and a stack's environments (its phoenix.json) are read when TAB is pressed, so the
script stays right when stacks change.  Pure: the caller prints the text.

bin/phoenix's own table (which verb runs which task, each task's options, those that
take a value, the word a bare <stack>/<vmid> stands for) is generated here too, from
the same parsers: `python -m phoenix_tasks.completion --write` rewrites the block
between the TABLE markers of bin/phoenix (a unit test fails while it is stale), so a
new task or flag needs no edit in bash and bin/phoenix still answers a usage error
without starting Python."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

# bin/phoenix's verbs: a collection's tasks are its actions; two top-level tasks are verbs.
TOP_LEVEL = {"validate": ("validate", ""), "sync-all": ("sync", "all")}
EXTRA_VERBS = ("help", "completion")
GLOBAL_FLAGS = ("--dry-run", "-v", "--verbose")


@dataclass(frozen=True)
class Verb:
    verb: str
    action: str  # "" for a verb without one (validate)
    flags: tuple[str, ...]
    value_flags: tuple[str, ...]
    positional: str | None  # the option a bare word stands for: --stack, --vmid, or None
    task: str = ""  # the task's name in the collection (swarm.deploy, sync-all)
    short_values: tuple[str, ...] = ()  # its one-letter options that take a value (lab: -c DIR)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _verb(verb: str, action: str, task, name: str = "") -> Verb:
    flags, values, shorts = [], [], []
    for arg in task.get_arguments(ignore_unknown_help=True):
        flag = _flag(arg.name)
        flags.append(flag)
        if arg.kind is not bool:
            values.append(flag)
            shorts += ["-" + n for n in arg.names if len(n) == 1]
    names = {a.name for a in task.get_arguments(ignore_unknown_help=True)}
    positional = "--stack" if "stack" in names else "--vmid" if "vmid" in names and verb in ("vm", "swarm") and \
        action in ("create", "status", "drain", "undrain") else None
    return Verb(verb, action, tuple(sorted(flags)), tuple(sorted(values)), positional, name, tuple(sorted(shorts)))


def verbs_of(collection) -> list[Verb]:
    """Every verb and action of bin/phoenix, with its task's flags."""
    found = []
    for name, task in sorted(collection.tasks.items()):
        if name in TOP_LEVEL:
            found.append(_verb(*TOP_LEVEL[name], task, name))
    for cname, sub in sorted(collection.collections.items()):
        for name, task in sorted(sub.tasks.items()):
            found.append(_verb(cname, name, task, f"{cname}.{name}"))
    return found


# -- bin/phoenix's table -------------------------------------------------------------

TABLE_BEGIN = ("# BEGIN TABLE: generated from the task collection by `python -m phoenix_tasks.completion "
               "--write`; do not edit")
TABLE_END = "# END TABLE"
# The verbs whose task changes nothing, so has no --dry-run to offer: bin/phoenix says
# "run it without" rather than "it would really run" (a fact the parser cannot tell).
CHANGES_NOTHING = frozenset({"validate", "completion", "swarm.diff", "swarm.envs", "swarm.history", "swarm.logs",
                             "swarm.ps", "swarm.render", "swarm.status", "portainer.status", "lab.status",
                             "vm.status"})
# A second bare word after the <stack>, and the option it stands for (swarm logs <stack> <service>).
SECOND_WORD = "service"


def cli_verbs(collection) -> list[Verb]:
    """bin/phoenix's verbs: the completion's, and `completion <shell>` itself."""
    completion = _verb("completion", "", collection.tasks["completion"], "completion")
    return verbs_of(collection) + [Verb(completion.verb, "", completion.flags, completion.value_flags, "--shell",
                                        "completion", completion.short_values)]


def _assoc(name: str, items: dict[str, str]) -> str:
    return f"declare -A {name}=(\n" + "".join(
        f"    [{shlex.quote(k)}]={shlex.quote(v)}\n" for k, v in sorted(items.items())) + ")"


def cli_table(collection) -> str:
    """The block of bin/phoenix between TABLE_BEGIN and TABLE_END, markers included."""
    verbs = cli_verbs(collection)
    key = {v: f"{v.verb} {v.action}".strip() for v in verbs}
    lines = [
        TABLE_BEGIN,
        "# verb -> task; every option of its task; its one-letter options that take a value; the",
        "# option a bare word after the verb stands for (and a second one); verbs that change nothing.",
        _assoc("task_of", {key[v]: v.task for v in verbs}),
        _assoc("actions_of", {v.verb: " ".join(sorted(w.action for w in verbs if w.verb == v.verb))
                              for v in verbs if v.action}),
        _assoc("flags_of", {key[v]: " " + " ".join(v.flags) + " " for v in verbs}),
        _assoc("short_values_of", {key[v]: " ".join(v.short_values) for v in verbs if v.short_values}),
        _assoc("positional_of", {key[v]: v.positional for v in verbs if v.positional}),
        _assoc("second_of", {key[v]: _flag(SECOND_WORD) for v in verbs
                             if v.positional == "--stack" and _flag(SECOND_WORD) in v.flags}),
        _assoc("changes_nothing_of", {key[v]: "1" for v in verbs if v.task in CHANGES_NOTHING}),
        "# every option of any task that takes a value: the word after it is its value, never a flag",
        "value_opts=(" + " ".join(sorted({f for v in verbs for f in v.value_flags})) + ")",
        TABLE_END,
    ]
    return "\n".join(lines) + "\n"


def with_table(script: str, table: str) -> str:
    """bin/phoenix's text with its TABLE block replaced by `table`."""
    start = script.index(TABLE_BEGIN)
    end = script.index(TABLE_END, start) + len(TABLE_END) + 1
    return script[:start] + table + script[end:]


def main(argv: list[str]) -> int:
    """--write: rewrite bin/phoenix's table from the collection; else print the table."""
    from .collection import ns
    from .core.paths import REPO_ROOT
    table = cli_table(ns)
    if argv[1:] == ["--write"]:
        path = REPO_ROOT / "bin" / "phoenix"
        path.write_text(with_table(path.read_text(), table))
        print(f"wrote the table of {path}")
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))


def bash_script(collection, default_stacks_dir: str) -> str:
    verbs = verbs_of(collection)
    words = sorted({v.verb for v in verbs} | set(EXTRA_VERBS))
    actions: dict[str, list[str]] = {}
    for v in verbs:
        if v.action and v.verb not in ("validate",):
            actions.setdefault(v.verb, []).append(v.action)
    lines = [
        "# bash completion for phoenix (generated by `phoenix completion bash`; verbs and flags",
        "# from the task collection, stacks and environments read at TAB time)",
        f"_phoenix_verbs={shlex.quote(' '.join(words))}",
        "declare -gA _phoenix_actions=(" + " ".join(
            f"[{shlex.quote(k)}]={shlex.quote(' '.join(sorted(a)))}" for k, a in sorted(actions.items())) + ")",
        "declare -gA _phoenix_flags=(" + " ".join(
            f"[{shlex.quote((v.verb + ' ' + v.action).strip())}]={shlex.quote(' '.join(v.flags))}"
            for v in verbs) + ")",
        "declare -gA _phoenix_positional=(" + " ".join(
            f"[{shlex.quote((v.verb + ' ' + v.action).strip())}]={shlex.quote(v.positional)}"
            for v in verbs if v.positional) + ")",
        "_phoenix_values=" + shlex.quote(" " + " ".join(sorted({f for v in verbs for f in v.value_flags})) + " "),
        f"_phoenix_default_stacks={shlex.quote(default_stacks_dir)}",
        _FUNCTIONS,
    ]
    return "\n".join(lines) + "\n"


_FUNCTIONS = r'''
_phoenix_stacks() {
    local dir=${PHOENIX_STACKS_DIR:-$_phoenix_default_stacks} d
    for d in "$dir"/*/; do
        [[ -f "$d/phoenix.json" ]] && basename -- "$d"
    done
}

_phoenix_envs() {  # the environments a stack declares ("default" serves any other name)
    local file=${PHOENIX_STACKS_DIR:-$_phoenix_default_stacks}/$1/phoenix.json
    [[ -f "$file" ]] || return 0
    python3 -c 'import json, sys
try:
    envs = json.load(open(sys.argv[1])).get("environments", {})
except Exception:
    envs = {}
print("\n".join(e for e in envs if e != "default"))' "$file" 2>/dev/null
}

_phoenix_services() {  # the services of a stack's compose file (its keys under `services:`)
    local file=${PHOENIX_STACKS_DIR:-$_phoenix_default_stacks}/$1/docker-compose.yml
    [[ -f "$file" ]] || return 0
    awk '/^services:[[:space:]]*$/ { s = 1; next }
         s && /^[^[:space:]#]/ { s = 0 }
         s && /^[[:space:]]+[A-Za-z0-9_.-]+:/ {
             match($0, /^[[:space:]]+/)
             if (!ind) ind = RLENGTH
             if (RLENGTH == ind) { k = $0; sub(/^[[:space:]]+/, "", k); sub(/:.*/, "", k); print k }
         }' "$file"
}

_phoenix() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local words=() i w skip=0 stack=""
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if (( skip )); then skip=0; continue; fi
        case "$w" in
            --dry-run|-v|--verbose) continue ;;
            --stack) skip=1; stack=${COMP_WORDS[i+1]}; continue ;;
            -*) [[ "$_phoenix_values" == *" $w "* ]] && skip=1; continue ;;
        esac
        words+=("$w")
    done
    if (( ${#words[@]} == 0 )); then
        COMPREPLY=($(compgen -W "$_phoenix_verbs --dry-run -v" -- "$cur"))
        return 0
    fi
    local verb=${words[0]} key
    if [[ -n "${_phoenix_actions[$verb]+x}" ]]; then
        if (( ${#words[@]} == 1 )); then
            COMPREPLY=($(compgen -W "${_phoenix_actions[$verb]}" -- "$cur"))
            return 0
        fi
        key="$verb ${words[1]}"
        [[ "${_phoenix_positional[$key]}" == --stack && ${#words[@]} -ge 3 && -z "$stack" ]] && stack=${words[2]}
    else
        key=$verb
    fi
    if [[ "$key" == completion ]]; then
        (( ${#words[@]} == 1 )) && COMPREPLY=($(compgen -W "bash" -- "$cur"))
        return 0
    fi
    case "$prev" in
        --env)
            [[ -n "$stack" ]] && COMPREPLY=($(compgen -W "$(_phoenix_envs "$stack")" -- "$cur"))
            return 0 ;;
        --stack)
            COMPREPLY=($(compgen -W "$(_phoenix_stacks)" -- "$cur"))
            return 0 ;;
    esac
    if [[ "$_phoenix_values" == *" $prev "* ]]; then
        return 0  # the value of a flag: nothing to suggest
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${_phoenix_flags[$key]}" -- "$cur"))
        return 0
    fi
    if [[ "${_phoenix_positional[$key]}" == --stack && -z "$stack" && ${#words[@]} -eq 2 ]]; then
        COMPREPLY=($(compgen -W "$(_phoenix_stacks)" -- "$cur"))
    elif [[ "$key" == "swarm logs" && -n "$stack" && ${#words[@]} -eq 3 ]]; then
        COMPREPLY=($(compgen -W "$(_phoenix_services "$stack")" -- "$cur"))  # phoenix swarm logs <stack> <service>
    fi
    return 0
}
complete -F _phoenix phoenix
'''
