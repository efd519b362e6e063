// proflab export: command line, the three remote helpers on a clean channel,
// --list/--latest, and the ECS, kubectl and docker/podman channels through
// fake aws/kubectl/docker scripts (tests/tools/fake-bin) that check the
// argument shape they receive and then behave like the channel (exec-sim).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  sourceIn, tmpdir, makeSource, runExport, sha256File, exportUntilDone, testPath, FAKE_BIN, SIM_DIR, EXIT,
  PROFLAB, PROFLABD,
} from '../tools/export-lib.mjs';

const HELPERS = ['proflabd', 'node', 'sh'];

function oneLine(stderr) {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `want a one-line reason, got:\n${stderr}`);
  return lines[0];
}

describe('export command line', () => {
  test('--help documents the channels and the exit codes', async () => {
    const r = await runExport(['--help']);
    assert.equal(r.code, 0);
    for (const s of ['--ecs', '--kubectl', '--docker', '--exec', '--list', '--latest', '--no-resume',
      '--force', '--timeout', 'TF_ENV_DIR', '3 incomplete but resumable'])
      assert.ok(r.stdout.includes(s), `--help lacks ${s}`);
  });

  const bad = [
    [['/a', 'b'], /choose one channel/],
    [['--exec', 'x', '--docker', 'c', '/a', 'b'], /choose one channel/],
    [['--exec', 'x', '/a'], /REMOTE LOCAL/],
    [['--exec', 'x', '--list', 'extra'], /REMOTE LOCAL/],
    [['--exec', 'x', '--latest', 'disk'], /cpu or heap/],
    [['--exec', 'x', '--chunk', '1000', '/a', 'b'], /--chunk/],
    [['--exec', 'x', '--timeout', 'soon', '/a', 'b'], /--timeout/],
    [['--exec', 'x', '--helper', 'perl', '/a', 'b'], /--helper/],
    [['--exec', 'x', '-n', 'ns', '/a', 'b'], /go with --kubectl/],
    [['--exec', 'x', '--task', 't', '/a', 'b'], /--task goes with --ecs/],
    [['--exec', "sh -c 'unbalanced", '/a', 'b'], /unbalanced/],
    [['--exec', 'x', '--bogus', '/a', 'b'], /unknown or incomplete option/],
    [['--ecs', '/a', 'b'], /--cluster/],
  ];
  for (const [args, re] of bad) {
    test(`usage error: ${args.join(' ')}`, async () => {
      const dir = tmpdir('usage');
      const r = await runExport(args, { cwd: dir, env: { TF_ENV_DIR: '', ECS_CLUSTER: '' } });
      assert.equal(r.code, EXIT.USAGE, r.stderr);
      assert.match(oneLine(r.stderr), re);
      assert.deepEqual(fs.readdirSync(dir), [], 'a usage error created files');
    });
  }
});

describe('export helper input', () => {
  // Found by the export-helper fuzz target: a channel that closes after a
  // line with no newline left that line unterminated (the helper read past
  // it on its stack). The last line is now a line like any other.
  test('proflabd export-helper: a marker line without its newline is still the marker', () => {
    const { src } = sourceIn('helper-eof', 1000, 3);
    const marker = '0123456789abcdef0123456789abcdef';
    for (const input of [marker, `${marker}\n`, `noise\n${marker}`]) {
      const r = spawnSync(PROFLABD, ['export-helper', 'get', src], { input, encoding: 'latin1' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^\\{${marker}\\|i\\|1000\\|`), `input ${JSON.stringify(input)}`);
    }
  });
});

describe('export on a clean channel', () => {
  for (const helper of HELPERS) {
    test(`helper ${helper}: exact copy, zero-byte file, missing file, existing destination`, async () => {
      const { dir, src } = sourceIn(`clean-${helper}`, 700 * 1024 + 123, 3);
      const out = path.join(dir, 'out.bin');
      let r = await runExport(['--exec', 'exec-sim', '--helper', helper, src, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256File(out), sha256File(src));
      assert.deepEqual(fs.readdirSync(dir).sort(), ['out.bin', 'src.bin'], 'state left behind');

      // the destination exists: refused and untouched, unless --force
      fs.writeFileSync(out, 'keep me');
      r = await runExport(['--exec', 'exec-sim', '--helper', helper, src, out]);
      assert.equal(r.code, EXIT.FAIL);
      assert.match(oneLine(r.stderr), /exists \(use --force/);
      assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
      r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--force', src, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256File(out), sha256File(src));

      const empty = path.join(dir, 'empty');
      fs.writeFileSync(empty, '');
      r = await runExport(['--exec', 'exec-sim', '--helper', helper, empty, path.join(dir, 'e.out')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(path.join(dir, 'e.out')).length, 0);

      const miss = path.join(dir, 'missing.out');
      r = await runExport(['--exec', 'exec-sim', '--helper', helper, path.join(dir, 'nope'), miss]);
      assert.equal(r.code, EXIT.FAIL);
      assert.match(oneLine(r.stderr), /ENOENT/);
      assert.ok(!fs.readdirSync(dir).some((n) => n.startsWith('missing.out')), 'files left for a missing source');

      r = await runExport(['--exec', 'exec-sim', '--helper', helper, dir, path.join(dir, 'd.out')]);
      assert.equal(r.code, EXIT.FAIL);
      assert.match(oneLine(r.stderr), /EISDIR/);
    });

    test(`helper ${helper}: --list, --latest, REMOTE relative to --dir`, async () => {
      const remote = tmpdir(`list-${helper}`);
      const here = tmpdir(`cwd-${helper}`);
      const names = {
        'cpu-20261125T101500.000Z-t1.cpuprofile': 1000,
        'cpu-20261125T111500.000Z-t1.cpuprofile': 2000,
        'cpu-20261125T121500.000Z-t1.cpuprofile.partial': 5,
        'heapdump-20261125T101500.000Z-t1.heapsnapshot': 3000,
        'notes.txt': 7,
      };
      for (const [n, size] of Object.entries(names)) makeSource(path.join(remote, n), size, size);
      fs.mkdirSync(path.join(remote, 'subdir'));
      let r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--list', '--dir', remote]);
      assert.equal(r.code, 0, r.stderr);
      const listed = Object.fromEntries(r.stdout.trim().split('\n').map((l) => {
        const i = l.indexOf(' ');
        return [l.slice(i + 1), Number(l.slice(0, i))];
      }));
      assert.deepEqual(listed, names);

      r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--dir', remote, '--latest', 'cpu'],
        { cwd: here });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'cpu-20261125T111500.000Z-t1.cpuprofile');
      assert.equal(sha256File(path.join(here, r.stdout.trim())), sha256File(path.join(remote, r.stdout.trim())));

      r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--latest', 'heap', path.join(here, 'h.snap')],
        { env: { LAB_ARTIFACT_DIR: remote } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256File(path.join(here, 'h.snap')),
        sha256File(path.join(remote, 'heapdump-20261125T101500.000Z-t1.heapsnapshot')));

      r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--dir', remote, 'notes.txt', path.join(here, 'n')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256File(path.join(here, 'n')), sha256File(path.join(remote, 'notes.txt')));

      const empty = tmpdir('empty');
      r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--dir', empty, '--latest', 'cpu'], { cwd: here });
      assert.equal(r.code, EXIT.FAIL);
      assert.match(oneLine(r.stderr), /no cpu-\* artifact/);
    });
  }

  // A container with nothing but POSIX tools: no proflabd, no node, and in the
  // second case no base64, gzip or sha256sum either (hex via od, POSIX cksum).
  function minimalBin(dir, tools) {
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(path.join(SIM_DIR, 'exec-sim'), path.join(bin, 'exec-sim'));
    for (const t of tools) {
      const real = ['/usr/bin', '/bin'].map((d) => path.join(d, t)).find((f) => fs.existsSync(f));
      assert.ok(real, `${t} not found on this machine`);
      fs.symlinkSync(real, path.join(bin, t));
    }
    return bin;
  }
  const POSIX = ['sh', 'dd', 'cksum', 'od', 'tr', 'wc', 'cat', 'rm'];
  for (const [name, tools] of [['coreutils', [...POSIX, 'base64', 'gzip', 'sha256sum']], ['POSIX only', POSIX]]) {
    test(`auto probing falls through to sh (${name})`, async () => {
      const dir = tmpdir('probe');
      const bin = minimalBin(dir, tools);
      const src = path.join(dir, 'src.bin');
      makeSource(src, 90000, 9);
      const out = path.join(dir, 'out');
      const r = await runExport(['--exec', 'exec-sim', '--timeout', '5', src, out], { env: { PATH: bin } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256File(out), sha256File(src));
      // and through faults, where only the per-chunk cksum and the whole-file
      // cksum (no SHA-256 without sha256sum) guard the data
      const dir2 = tmpdir('probe-f');
      const src2 = path.join(dir2, 'src.bin');
      makeSource(src2, 120000, 10);
      for (const seed of [1, 2, 3]) {
        fs.rmSync(path.join(dir2, 'out.bin'), { force: true });
        await exportUntilDone({ dir: dir2, src: src2, helper: 'auto', faults: 'all', seed, p: 0.25,
          extraEnv: { PATH: bin }, timeout: 2 });
      }
    });
  }

  test('progress bar on stderr only when it is a terminal', async (t) => {
    const { dir, src } = sourceIn('progress', 300000, 15);
    const r = await runExport(['--exec', 'exec-sim', src, path.join(dir, 'a')]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /%/, 'progress written to a pipe');
    // script(1) gives the command a terminal
    const cmd = `${PROFLAB} export --exec exec-sim ${src} ${path.join(dir, 'b')}`;
    const tty = spawnSync('script', ['-qec', cmd, '/dev/null'],
      { encoding: 'utf8', env: { ...process.env, PATH: testPath() } });
    if (tty.error) {
      t.skip(`the terminal half needs script(1): ${tty.error.message}`);
      return;
    }
    assert.equal(tty.status, 0, tty.stdout);
    assert.match(tty.stdout, /100% \[#+\] 0\.3\/0\.3 MiB/);
    assert.equal(sha256File(path.join(dir, 'b')), sha256File(src));
  });

  test('no helper can run: exit 1 with the reason, nothing left', async () => {
    const dir = tmpdir('nohelper');
    const r = await runExport(['--exec', 'false', '--retries', '1', '/etc/hostname', path.join(dir, 'out')]);
    assert.equal(r.code, EXIT.FAIL);
    assert.match(oneLine(r.stderr), /no remote helper answered/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

describe('export channels (fake aws, kubectl, docker)', () => {
  function fakeEnv(dir, extra = {}) {
    return { FAKE_ARGS_LOG: path.join(dir, 'args.log'), ...extra };
  }
  const argsLog = (dir) => fs.readFileSync(path.join(dir, 'args.log'), 'utf8');

  test('--ecs with --cluster/--task/--container: execute-command --interactive, one --command', async () => {
    const { dir, src } = sourceIn('ecs', 200000, 5);
    for (const helper of HELPERS) {
      const out = path.join(dir, `out-${helper}`);
      const r = await runExport(['--ecs', '--cluster', 'lab', '--task', 'arn:aws:ecs:task/lab/abc',
        '--container', 'app', '--helper', helper, src, out],
      { env: fakeEnv(dir, { FAKE_CLUSTER: 'lab', FAKE_TASK: 'arn:aws:ecs:task/lab/abc', FAKE_CONTAINER: 'app' }) });
      assert.equal(r.code, 0, `${helper}: ${r.stderr}`);
      assert.equal(sha256File(out), sha256File(src));
    }
    assert.match(argsLog(dir), /execute-command cluster=lab task=arn:aws:ecs:task\/lab\/abc container=app/);
  });

  test('--ecs from TASK_ARN, CONTAINER_NAME and Terraform outputs (file and terraform output -json)', async () => {
    const { dir, src } = sourceIn('ecs-tf', 100000, 6);
    const tf = path.join(dir, 'tf');
    fs.mkdirSync(tf);
    fs.writeFileSync(path.join(tf, 'outputs.json'), JSON.stringify({
      ecs_cluster_name: { value: 'tf-cluster', type: 'string', sensitive: false },
      ecs_service_name: { value: 'tf-service', type: 'string', sensitive: false },
    }));
    // the service's only task is looked up with list-tasks
    let r = await runExport(['--ecs', src, path.join(dir, 'a')], {
      env: fakeEnv(dir, { TF_ENV_DIR: tf, CONTAINER_NAME: 'web', FAKE_CLUSTER: 'tf-cluster', FAKE_SERVICE: 'tf-service',
        FAKE_TASKS: 'arn:task/one', FAKE_TASK: 'arn:task/one', FAKE_CONTAINER: 'web' }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(path.join(dir, 'a')), sha256File(src));
    assert.match(argsLog(dir), /list-tasks --cluster tf-cluster --service-name tf-service/);

    // two tasks and no --task: refuse and name them (the Node lab's second failure)
    r = await runExport(['--ecs', src, path.join(dir, 'b')], {
      env: fakeEnv(dir, { TF_ENV_DIR: tf, FAKE_CLUSTER: 'tf-cluster', FAKE_SERVICE: 'tf-service',
        FAKE_TASKS: 'arn:task/one\tarn:task/two' }),
    });
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.stderr, /2 tasks; choose one with --task/);
    assert.match(r.stderr, /arn:task\/two/);
    assert.ok(!fs.existsSync(path.join(dir, 'b')));

    // TASK_ARN wins; terraform output -json when there is no outputs.json
    const tf2 = path.join(dir, 'tf2');
    fs.mkdirSync(tf2);
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'terraform'),
      '#!/bin/sh\n[ "$1" = "-chdir=' + tf2 + '" ] && [ "$2" = output ] && [ "$3" = -json ] || exit 9\n'
      + 'echo \'{"cluster_name":{"value":"tfo"}}\'\n', { mode: 0o755 });
    r = await runExport(['--ecs', src, path.join(dir, 'c')], {
      env: fakeEnv(dir, { PATH: testPath([bin]), TF_ENV_DIR: tf2, TASK_ARN: 'arn:task/env', FAKE_CLUSTER: 'tfo',
        FAKE_TASK: 'arn:task/env' }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(path.join(dir, 'c')), sha256File(src));
  });

  test('--ecs under ECS faults (pty, banners, cuts, hangs), every helper', async () => {
    for (const helper of HELPERS) {
      for (const seed of [1, 2]) {
        const { dir, src } = sourceIn(`ecs-f-${helper}`, 200000, seed);
        await exportUntilDone({
          dir, src, helper, faults: 'all', seed, p: 0.25,
          channel: ['--ecs', '--cluster', 'lab', '--task', 'arn:t'],
          extraEnv: { FAKE_CLUSTER: 'lab', FAKE_TASK: 'arn:t' },
        });
      }
    }
  });

  test('--kubectl POD -n NS -c C: kubectl exec -i ... --', async () => {
    const { dir, src } = sourceIn('kube', 150000, 7);
    let r = await runExport(['--kubectl', 'lab-7f9c', '-n', 'prof', '-c', 'app', src, path.join(dir, 'a')],
      { env: fakeEnv(dir, { FAKE_POD: 'lab-7f9c', FAKE_NS: 'prof', FAKE_CONTAINER: 'app' }) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(path.join(dir, 'a')), sha256File(src));
    r = await runExport(['--kubectl', 'lab-7f9c', src, path.join(dir, 'b')],
      { env: fakeEnv(dir, { FAKE_POD: 'lab-7f9c' }) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(argsLog(dir), /kubectl pod=lab-7f9c ns=prof c=app\n/);
    assert.match(argsLog(dir), /kubectl pod=lab-7f9c ns= c=\n/);
  });

  test('--docker with the engine configurable (docker, podman)', async () => {
    const { dir, src } = sourceIn('docker', 150000, 8);
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(path.join(FAKE_BIN, 'docker'), path.join(bin, 'podman'));
    let r = await runExport(['--docker', 'lab1', src, path.join(dir, 'a')],
      { env: fakeEnv(dir, { FAKE_CONTAINER: 'lab1' }) });
    assert.equal(r.code, 0, r.stderr);
    r = await runExport(['--docker', 'lab1', '--engine', 'podman', src, path.join(dir, 'b')],
      { env: fakeEnv(dir, { PATH: testPath([bin]), FAKE_ENGINE: 'podman', FAKE_CONTAINER: 'lab1' }) });
    assert.equal(r.code, 0, r.stderr);
    r = await runExport(['--docker', 'lab1', src, path.join(dir, 'c')],
      { env: fakeEnv(dir, { PATH: testPath([bin]), PROFLAB_CONTAINER_ENGINE: 'podman', FAKE_ENGINE: 'podman', FAKE_CONTAINER: 'lab1' }) });
    assert.equal(r.code, 0, r.stderr);
    for (const n of ['a', 'b', 'c']) assert.equal(sha256File(path.join(dir, n)), sha256File(src));
    assert.match(argsLog(dir), /^docker exec -i lab1\n(podman exec -i lab1\n)+/);
  });
});
