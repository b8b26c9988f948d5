#!/usr/bin/env python3
"""Generate configparser golden expectations for lib/config's tests.

Run once (python3 lib/config/testdata/gen.py) and commit the output: the Go
tests read testdata/configparser/*.ini and *.json and never need python.
Each case is parsed with ConfigParser(strict=True,
interpolation=ExtendedInterpolation()), like EIB does.
"""
import configparser
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configparser')

CASES = {
    'basic': '[build]\nProduct = eos\nbranch: master\n  \n[Image]\nKey=Value\nspaced   =   v a l u e   \n',
    'multiline': (
        '[s]\n'
        'list = a\n'
        '  b\n'
        '\n'
        '  c\n'
        '  # a comment inside the value\n'
        '  ; another\n'
        '\td = e\n'
        '      deeper\n'
        '\n'
        '\n'
        'next = 1\n'
    ),
    'empty_first_line': '[s]\nhooks =\n  10-a\n  20-b\nempty =\nspaces =    \n',
    'comments': '# top comment\n; another\n[s]\n   # indented comment\nk = v # not a comment\nk2 = v ; not either\n#k3 = commented out\n',
    'first_delimiter': '[s]\na:b = c\nd=e:f\nurl = http://example.com:80/x=y\ng : h = i\n',
    'default_section': (
        '[DEFAULT]\n'
        'shared = from-default\n'
        'override = default\n'
        '[one]\n'
        'override = one\n'
        'use = ${shared}/${override}\n'
        '[two]\n'
        'x = ${DEFAULT:shared}\n'
        '[DEFAULT]\n'
        'late = yes\n'
    ),
    'section_headers': '[sec] trailing text\na = 1\n[a]b]\nb = 2\n[ spaced ]\nc = 3\n[x=y]\nd = 4\n',
    'indented_option_after_header': '[s]\n    k = v\n      cont\n    j = w\n',
    'unicode_space': '[s]\nk = v\n\u3000cont\nÄBC = upper\nkey\u00a0name = nbsp\n',
    'crlf': '[s]\r\nk = v\r\n  more\r\nj = w\rl = x\r\n',
    'no_trailing_newline': '[s]\nk = v',
    'brackets_in_values': '[s]\nk = [not a section]\nj = a]b\n',
    'blank_then_continuation': '[s]\nk = 1\n\n  2\nj = 3\n',
    'key_with_spaces': '[s]\nmy key = v\nMixed Case Key = w\n',
    'indented_header_is_continuation': '[s]\nk = v\n  [t]\n  x = 1\n',
    'interpolation': (
        '[build]\n'
        'a = A\n'
        'b = ${a}-${a}\n'
        'dollar = $$HOME and $${a}\n'
        'mixed = ${Image:Hooks}\n'
        'upper = ${A}\n'
        'multi = ${b}\n'
        '  line ${a}\n'
        '[Image]\n'
        'hooks = ${build:b}\n'
        'self = ${hooks}\n'
    ),
    'depth_ten_ok': '[s]\n' + ''.join('x%d = ${x%d}\n' % (i, i + 1) for i in range(10)) + 'x10 = end\n',
    'depth_eleven_error': '[s]\n' + ''.join('x%d = ${x%d}\n' % (i, i + 1) for i in range(11)) + 'x11 = end\n',
    'interpolation_errors': (
        '[s]\n'
        'cycle1 = ${cycle2}\n'
        'cycle2 = ${cycle1}\n'
        'missing = ${nope}\n'
        'nosect = ${nosuch:key}\n'
        'twocolons = ${a:b:c}\n'
        'lone = cost $5\n'
        'empty = ${}\n'
        'open = ${a\n'
        'end = trailing $\n'
        'ok = fine\n'
        'nested = ${${ok}}\n'
    ),
    'err_duplicate_section': '[s]\na = 1\n[t]\n[s]\nb = 2\n',
    'err_duplicate_option': '[s]\nKey = 1\nkey = 2\n',
    'err_duplicate_default_option': '[DEFAULT]\na = 1\n[s]\n[DEFAULT]\na = 2\n',
    'err_key_before_section': '# comment\nk = v\n[s]\n',
    'err_no_delimiter': '[s]\na = 1\njust words\n',
    'err_empty_key': '[s]\n= value\n',
    'err_empty_section_name': '[]\na = 1\n',
}


def dump(name, text):
    path = os.path.join(HERE, name + '.ini')
    with open(path, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    out = {'error': None}
    p = configparser.ConfigParser(interpolation=configparser.ExtendedInterpolation())
    try:
        p.read(path, encoding='utf-8')
    except configparser.Error as e:
        line = getattr(e, 'lineno', None)
        if line is None and getattr(e, 'errors', None):
            line = e.errors[0][0]
        out['error'] = {'type': type(e).__name__, 'line': line}
    else:
        out['defaults'] = [[k, v] for k, v in p._defaults.items()]
        out['sections'] = [{'name': s, 'keys': [[k, v] for k, v in p._sections[s].items()]}
                           for s in p.sections()]
        gets = []
        for s in p.sections():
            for k in p._sections[s]:
                try:
                    gets.append({'section': s, 'key': k, 'value': p.get(s, k)})
                except configparser.Error as e:
                    gets.append({'section': s, 'key': k, 'error': type(e).__name__})
        out['get'] = gets
        sets = []
        for s in p.sections():
            for k, v in p._sections[s].items():
                q = configparser.ConfigParser(interpolation=configparser.ExtendedInterpolation())
                q.add_section('x')
                try:
                    q.set('x', 'k', v)
                    ok = True
                except ValueError:
                    ok = False
                sets.append({'section': s, 'key': k, 'ok': ok})
        out['set'] = sets
        import io
        buf = io.StringIO()
        p.write(buf)
        out['write'] = buf.getvalue()
    with open(os.path.join(HERE, name + '.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write('\n')


# Random cases from tricky fragments (fixed seed: the output is stable).
FRAGMENTS = [
    '[s]', '[t]', '[DEFAULT]', '[S]', '  [s]', '[a]b]', 'k = v', 'K = w', 'k2: v2', 'x=y=z',
    'a : b : c', '  cont', '\tcont', '    k3 = deep', '', '   ', '# c', '  ; c', 'k = ${k2}',
    'r = ${t:k}', 'd = $$', 'bad = $', 'e = ${DEFAULT:k}', 'n = ${nope}', 'v =', 'v2 =   ',
    'u = \u00e9t\u00e9', '\u3000u2', '= nokey', 'no delimiter', 'K4 = ${K}', 'i = ${i}',
]


# Fragments that parse (values, continuations, references).
OK_FRAGMENTS = [
    '  cont', '\tcont', '    k3 = deep', '', '   ', '# c', '  ; c', 'k = ${k2}', 'r = ${t:k}',
    'd = $$', 'bad = $', 'e = ${DEFAULT:k}', 'n = ${nope}', 'u = \u00e9t\u00e9', '\u3000u2',
    'i = ${i}', 'm = ${s:k} ${k}', 'x: ${r}', '  [not]', 'z = [v]',
]


def random_cases(prefix, n, fragments, seed):
    import random
    rnd = random.Random(seed)
    cases = {}
    for i in range(n):
        lines = ['[s]'] if rnd.random() < 0.8 or fragments is OK_FRAGMENTS else []
        for _ in range(rnd.randint(3, 14)):
            if fragments is OK_FRAGMENTS and rnd.random() < 0.3:
                lines.append(rnd.choice(['k = v', 'k2 = w', 'K4 = ${k}', '[t]', '[DEFAULT]']))
            else:
                lines.append(rnd.choice(fragments))
        end = rnd.choice(['\n', '\r\n', ''])
        cases['%s_%02d' % (prefix, i)] = '\n'.join(lines) + end
    return cases


if __name__ == '__main__':
    os.makedirs(HERE, exist_ok=True)
    CASES.update(random_cases('random', 60, FRAGMENTS, 2))
    CASES.update(random_cases('random_ok', 60, OK_FRAGMENTS, 3))
    for n, t in sorted(CASES.items()):
        dump(n, t)
