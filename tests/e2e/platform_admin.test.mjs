// `silica admin` end to end: accounts with sign-up and referral gifts,
// credits, keys shown once, revocation, prices, limits, usage reports and
// the books check, all through the real binary on a fresh data dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = process.env.SILICA_BIN;

function admin(dir, ...args) {
  const r = spawnSync(BIN, ['admin', '--data', dir, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('silica admin: accounts, keys, prices, limits, usage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'silica-admin-'));
  try {
    let r = admin(dir, 'accounts', 'create', 'alice');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /account 1 created/);
    r = admin(dir, 'accounts', 'create', 'bob', '--referrer', '1');
    assert.equal(r.code, 0, r.err);
    assert.notEqual(admin(dir, 'accounts', 'create', 'eve', '--referrer', '42').code, 0);

    // Sign-up gift 14 yuan, referral gift 14 yuan to each side by default.
    r = admin(dir, 'accounts', 'credit', '2', '--charge', '88.5');
    assert.equal(r.code, 0, r.err);
    r = admin(dir, 'accounts', 'show', '2');
    assert.equal(r.code, 0, r.err);
    const info = JSON.parse(r.out);
    assert.equal(info.code, 20000);
    assert.equal(info.status, true);
    assert.deepEqual(
      [info.data.id, info.data.name, info.data.balance, info.data.chargeBalance,
        info.data.totalBalance, info.data.status],
      ['2', 'bob', '28.00', '88.50', '116.50', 'normal']);
    r = admin(dir, 'accounts', 'show', '1');
    assert.equal(JSON.parse(r.out).data.totalBalance, '28.00');
    assert.notEqual(admin(dir, 'accounts', 'credit', '2', '--charge', '1.0000001').code, 0);

    r = admin(dir, 'accounts', 'list', '--format', 'csv');
    assert.equal(r.code, 0, r.err);
    const rows = r.out.trim().split('\n');
    assert.equal(rows.length, 3);
    assert.match(rows[2], /^2,"bob",normal,28\.00,88\.50,116\.50,1,/);

    // A key is printed once, on stdout; only its prefix is listed after.
    r = admin(dir, 'keys', 'create', '--account', '2', '--name', 'laptop', '--expires', '+30d');
    assert.equal(r.code, 0, r.err);
    const key = r.out.trim();
    assert.match(key, /^sk-[A-Za-z0-9]{48}$/);
    assert.match(r.err, /only time/);
    r = admin(dir, 'keys', 'list');
    assert.ok(r.out.includes(key.slice(0, 11)));
    assert.ok(!r.out.includes(key.slice(11, 20)));
    const db = readFileSync(join(dir, 'silica.db')).toString('latin1');
    assert.ok(!db.includes(key.slice(3)), 'the key text must not be stored');
    r = admin(dir, 'keys', 'revoke', '1');
    assert.equal(r.code, 0, r.err);
    assert.match(admin(dir, 'keys', 'list', '--account', '2').out, /revoked/);
    assert.notEqual(admin(dir, 'keys', 'revoke', '99').code, 0);
    assert.notEqual(admin(dir, 'keys', 'create', '--account', '99').code, 0);

    r = admin(dir, 'models', 'set-price', 'qwen-14b', '--input', '1.26', '--output', '1.26',
      '--cached', '0.63');
    assert.equal(r.code, 0, r.err);
    assert.match(admin(dir, 'models', 'prices').out, /qwen-14b\s+1\.26\s+0\.63\s+1\.26/);
    r = admin(dir, 'models', 'set-limits', '2', 'qwen-14b', '--rpm', '30');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /rpm 30 tpm 1000000 /);
    assert.match(admin(dir, 'models', 'limits', '1', 'free-x').out, /rpm 100 tpm 100000 /);

    r = admin(dir, 'usage', '--by', 'day,model', '--format', 'csv');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split('\n')[0],
      'day,model,requests,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,total_tokens,cost');
    assert.notEqual(admin(dir, 'usage', '--by', 'password').code, 0);
    r = admin(dir, 'verify');
    assert.equal(r.code, 0, r.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
