"""The README's code blocks name what exists: files, make targets, tool options, imports.

Every fenced code block of README.md (and of docs/*.md) is parsed. In shell blocks each command that names a
repository file (``tools/*.py``, ``tools/*.sh``, ``configs/...``, ``demo/...``) must name an
existing one, ``make`` targets must be the Makefile's, and every ``--option`` on a command's
line (its comment included, where optional arguments are shown as ``[--dynamic]``) must be one
the tool accepts: a Python tool's ``--help`` lists it (each tool's help is run once, in parallel);
a shell tool forwards its options to the Python tool it names (``TOOL=.../train.py``), which
must list it, and takes at least the positional arguments its ``$# -lt N`` check asks for; the
settings given to it as ``NAME=value`` must be ones it reads. In Python blocks the paths in
strings must exist, ``mmdet::`` / ``mmseg::`` bases must be in the installed packages, and names
imported from ``emo_mm`` must be importable. Renaming a tool, an option or a setting fails here.
The relative links of the README, CHANGELOG.md and docs/ must point to existing files and headings.
"""
import ast
import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / 'README.md'
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.S | re.M)
OPTION = re.compile(r'(?<![\w-])--[A-Za-z][\w-]*')
ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
REPO_PATH = re.compile(r'^(configs|tools|demo|docs|tests)/')
SEPARATORS = {'&&', '||', ';', '|', '&'}


class Command(NamedTuple):
    env: List[str]  # the NAME of each NAME=value before the command
    words: List[str]  # the command and its arguments
    options: Set[str]  # every --option on its line, comment included


def code_blocks(text: str) -> List[tuple]:
    """(language, body) of every fenced code block."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def logical_lines(body: str) -> Iterator[str]:
    """The lines of a shell block, backslash continuations joined."""
    line = ''
    for raw in body.splitlines():
        if raw.rstrip().endswith('\\'):
            line += raw.rstrip()[:-1] + ' '
            continue
        yield line + raw
        line = ''
    if line:
        yield line


def shell_commands(body: str) -> List[Command]:
    """The commands of a shell block; ``&&``, ``;`` and pipes separate commands on a line, and
    the options in a line's comment belong to its last command."""
    commands = []
    for line in logical_lines(body):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = '#'
        words = list(lexer)
        code_options = {w.split('=')[0] for w in words if OPTION.fullmatch(w.split('=')[0])}
        comment_options = set(OPTION.findall(line)) - code_options
        current: List[str] = []
        line_commands = []
        for word in words + [';']:
            if word in SEPARATORS:
                if current:
                    env = []
                    while current and ASSIGNMENT.match(current[0]):
                        env.append(current.pop(0).split('=')[0])
                    options = {w.split('=')[0] for w in current if OPTION.match(w)}
                    line_commands.append(Command(env, current, options))
                current = []
            else:
                current.append(word)
        if line_commands:
            line_commands[-1].options.update(comment_options)
        commands.extend(line_commands)
    return commands


def script_text(script: Path) -> str:
    """A shell tool's text with the files it sources (``source "$(dirname "$0")/x.sh"``)."""
    text = script.read_text()
    for name in re.findall(r'source\s+"\$\(dirname "\$0"\)/([\w.]+)"', text):
        text += (script.parent / name).read_text()
    return text


def forwarded_tool(script: Path) -> Optional[str]:
    """The Python tool a shell tool forwards its further arguments to (``TOOL=.../x.py``)."""
    found = re.search(r'TOOL="\$\(dirname "\$0"\)/([\w.]+\.py)"', script.read_text())
    return f'tools/{found.group(1)}' if found else None


def make_targets() -> Set[str]:
    return set(re.findall(r'^([A-Za-z0-9_.-]+)\s*:(?!=)', (REPO / 'Makefile').read_text(), re.M))


def python_tools(text: str) -> Set[str]:
    """Every Python tool whose --help the README's commands need."""
    tools = set()
    for language, body in code_blocks(text):
        if language not in ('bash', 'sh', 'shell', ''):
            continue
        for command in shell_commands(body):
            words = command.words
            if words[0] in ('python', 'python3') and len(words) > 1 and words[1].endswith('.py'):
                tools.add(words[1])
            script = shell_script(words)
            if script is not None and (REPO / script).is_file():
                tool = forwarded_tool(REPO / script)
                if tool:
                    tools.add(tool)
    return {tool for tool in tools if (REPO / tool).is_file()}


def shell_script(words: List[str]) -> Optional[str]:
    if words[0] == 'bash' and len(words) > 1 and words[1].endswith('.sh'):
        return words[1]
    if words[0].startswith('tools/') and words[0].endswith('.sh'):
        return words[0]
    return None


def help_texts(tools: Set[str]) -> Dict[str, str]:
    """``python TOOL --help`` of each tool, all started at once."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', CUDA_VISIBLE_DEVICES='')
    running = {tool: subprocess.Popen([sys.executable, str(REPO / tool), '--help'], cwd=REPO,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
               for tool in sorted(tools)}
    texts = {}
    for tool, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f'{tool} --help failed:\n{output[-2000:]}'
        texts[tool] = output
    return texts


def accepts(help_text: str, option: str) -> bool:
    return re.search(rf'(?<![\w-]){re.escape(option)}(?![\w-])', help_text) is not None


def check_paths(words: List[str], where: str) -> List[str]:
    return [f'{where}: {word} does not exist' for word in words
            if REPO_PATH.match(word) and not (REPO / word).exists()]


def check_shell(body: str, helps: Dict[str, str], where: str) -> List[str]:
    problems = []
    targets = make_targets()
    for command in shell_commands(body):
        words, context = command.words, f'{where}: `{" ".join(command.words)}`'
        problems += check_paths(words, context)
        if words[0] == 'make':
            problems += [f'{context}: no make target {t!r}' for t in words[1:]
                         if not t.startswith('-') and '=' not in t and t not in targets]
            makefiles = (REPO / 'Makefile').read_text() + (REPO / 'tools/install.sh').read_text()
            problems += [f'{context}: {name} is read by neither the Makefile nor tools/install.sh'
                         for name in command.env if name not in makefiles]
        elif words[0] in ('python', 'python3') and len(words) > 1 and words[1].endswith('.py'):
            tool = words[1]
            if tool in helps:
                problems += [f'{context}: {tool} has no option {option}'
                             for option in sorted(command.options)
                             if not accepts(helps[tool], option)]
        script = shell_script(words)
        if script is None or not (REPO / script).is_file():
            continue
        path = REPO / script
        if words[0] == script and not os.access(path, os.X_OK):
            problems.append(f'{context}: {script} is run directly but is not executable')
        text = script_text(path)
        problems += [f'{context}: {script} does not read the setting {name}'
                     for name in command.env
                     if not re.search(rf'\$\{{?{name}\b', text)]
        arguments = words[words.index(script) + 1:]
        positional = next((i for i, w in enumerate(arguments) if w.startswith('-')),
                          len(arguments))
        least = re.search(r'\$# -lt (\d+)', text)
        if least and positional < int(least.group(1)):
            problems.append(f'{context}: {script} needs {least.group(1)} arguments before its '
                            f'options, got {positional}')
        tool = forwarded_tool(path)
        for option in sorted(command.options):
            if tool in helps:
                if not accepts(helps[tool], option):
                    problems.append(f'{context}: {tool} (run by {script}) has no option {option}')
            elif option not in text:
                problems.append(f'{context}: {script} takes no option {option}')
    return problems


def mm_base_exists(base: str) -> bool:
    """An ``mmdet::`` / ``mmseg::`` config base in the installed package's configs."""
    scope, _, relative = base.partition('::')
    package = importlib.import_module(scope)
    return (Path(package.__file__).parent / '.mim' / 'configs' / relative).is_file()


def check_python(body: str, where: str) -> List[str]:
    problems = []
    tree = ast.parse(body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if REPO_PATH.match(value) and not (REPO / value).exists():
                problems.append(f'{where}: {value} does not exist')
            if re.match(r'^mm(det|seg)::', value) and not mm_base_exists(value):
                problems.append(f'{where}: no config base {value}')
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('emo_mm'):
            module = importlib.import_module(node.module)
            problems += [f'{where}: {node.module} has no {alias.name}' for alias in node.names
                         if not hasattr(module, alias.name)]
    return problems


def problems_of(text: str, helps: Dict[str, str]) -> List[str]:
    problems = []
    for number, (language, body) in enumerate(code_blocks(text), 1):
        where = f'code block {number}'
        if language == 'python':
            problems += check_python(body, where)
        elif language in ('bash', 'sh', 'shell', ''):
            problems += check_shell(body, helps, where)
    return problems


def heading_anchors(text: str) -> Set[str]:
    """GitHub's anchors of a Markdown file's headings (code blocks left out)."""
    headings = re.findall(r'^#+ (.*)$', FENCE.sub('', text), re.M)
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-') for h in headings}


def broken_links(path: Path) -> List[str]:
    """Relative links of a Markdown file whose file or heading does not exist."""
    problems = []
    for link in re.findall(r'\]\(([^)\s]+)\)', FENCE.sub('', path.read_text(encoding='utf-8'))):
        if re.match(r'^[a-z]+:', link):
            continue
        file, _, anchor = link.partition('#')
        target = (path.parent / file) if file else path
        if not target.exists():
            problems.append(f'{path.name}: {link}: no such file')
        elif anchor and target.suffix == '.md' and \
                anchor not in heading_anchors(target.read_text(encoding='utf-8')):
            problems.append(f'{path.name}: {link}: no such heading')
    return problems


PAGES = [README, *sorted((REPO / 'docs').glob('*.md'))]  # the docs' commands are held to it too


@pytest.fixture(scope='module')
def readme() -> str:
    return README.read_text(encoding='utf-8')


@pytest.fixture(scope='module')
def helps() -> Dict[str, str]:
    # The tools the negative test below names are among them.
    tools = {'tools/train.py', 'tools/test.py'}
    for page in PAGES:
        tools |= python_tools(page.read_text(encoding='utf-8'))
    return help_texts(tools)


@pytest.mark.parametrize('page', PAGES, ids=[page.name for page in PAGES])
def test_commands_name_existing_files_targets_and_options(page, helps):
    problems = problems_of(page.read_text(encoding='utf-8'), helps)
    assert not problems, '\n'.join(problems)


def test_links_of_the_readme_and_docs_point_to_existing_files_and_headings(tmp_path):
    pages = [README, REPO / 'CHANGELOG.md', *sorted((REPO / 'docs').glob('*.md'))]
    problems = [problem for page in pages if page.exists() for problem in broken_links(page)]
    assert not problems, '\n'.join(problems)
    # The check itself: a renamed page and a renamed heading are reported.
    page = tmp_path / 'page.md'
    page.write_text(f'[x]({REPO}/docs/no_such.md) [y]({REPO}/docs/gpu.md#no-such-heading) '
                    f'[z]({REPO}/docs/gpu.md#the-gpu-check)')
    assert len(broken_links(page)) == 2, broken_links(page)


def test_the_parser_sees_the_readmes_commands(readme):
    """The check above checks something: the README's blocks yield the tools it documents."""
    blocks = code_blocks(readme)
    assert {language for language, _ in blocks} >= {'bash', 'python'}
    words = [c.words for lang, body in blocks if lang == 'bash' for c in shell_commands(body)]
    assert ['make', 'demo'] in words and ['make', 'test'] in words
    assert {'tools/train.py', 'tools/test.py', 'tools/export_onnx.py'} <= python_tools(readme)
    assert any(w[0] == 'tools/dist_train.sh' for w in words)


def test_renamed_tools_options_and_settings_are_reported(helps):
    text = '\n'.join([
        '```bash',
        'python tools/train.py configs/ssdlite/emo_1m.py --no-such-option',
        'tools/dist_train.sh configs/ssdlite/emo_1m.py 8 --resume --renamed-flag  # [--amp]',
        'python tools/test.py configs/ssdlite/emo_9m.py CKPT',
        'bash tools/renamed.sh',
        'GPUS=2 NO_SUCH_SETTING=1 tools/slurm_train.sh PARTITION job configs/ssdlite/emo_1m.py',
        'make test && make no-such-target',
        '```',
        '```python',
        "from emo_mm.deploy import init_onnx_model, no_such_function",
        "cfg = 'mmdet::ssd/no_such_config.py'",
        '```',
    ])
    found = '\n'.join(problems_of(text, helps))
    for expected in ['tools/train.py has no option --no-such-option',
                     'tools/train.py (run by tools/dist_train.sh) has no option --renamed-flag',
                     'configs/ssdlite/emo_9m.py does not exist',
                     'tools/renamed.sh does not exist',
                     'tools/slurm_train.sh does not read the setting NO_SUCH_SETTING',
                     'tools/slurm_train.sh needs 4 arguments before its options, got 3',
                     "no make target 'no-such-target'",
                     'emo_mm.deploy has no no_such_function',
                     'no config base mmdet::ssd/no_such_config.py']:
        assert expected in found, f'not reported: {expected}\n{found}'
    for accepted in ['has no option --resume', 'has no option --amp', "no make target 'test'",
                     'read the setting GPUS\n']:
        assert accepted not in found + '\n', found
