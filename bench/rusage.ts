// The ProxyCommand wrapper that measures ssm-proxy from outside: a few lines of C compiled at
// bench time. It forks, execs the real proxy with stdin/stdout/stderr inherited (the SSH stream
// never passes through the wrapper) and points its own copies at /dev/null (exec leaves none),
// forwards SIGHUP/SIGINT/SIGTERM/SIGQUIT (ssh sends SIGHUP to
// its ProxyCommand when it exits; the proxy must get it as it would without the wrapper), and
// reaps the proxy with wait4(2), whose rusage is the kernel's accounting of the proxy process
// alone (ru_utime, ru_stime, ru_maxrss = its VmHWM). The wrapper's own CPU is never in it.
//
// When SSM_BENCH_RUSAGE=FILE is set it writes FILE.pid ("<pid> <epoch ms>") as soon as the proxy
// is forked, and FILE (renamed into place, so it appears complete) after the proxy exits:
//   <pid> <exit|signal> <code> <utime s> <stime s> <maxrss KiB> <start epoch ms> <end epoch ms>
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child = 0;
static volatile sig_atomic_t pending = 0;

static void forward(int sig) {
  if (child > 0) kill((pid_t)child, sig);
  else pending = sig;
}

static double epoch_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: rusage-wrap COMMAND [ARG...]\n");
    return 127;
  }
  const char *out = getenv("SSM_BENCH_RUSAGE");
  int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  double start = epoch_ms();
  pid_t pid = fork();
  if (pid < 0) {
    perror("rusage-wrap: fork");
    return 127;
  }
  if (pid == 0) {
    /* exec resets caught signals to their defaults */
    execvp(argv[1], argv + 1);
    perror("rusage-wrap: exec");
    _exit(127);
  }
  child = pid;
  if (pending) kill(pid, pending);
  /* Standing in for exec, the wrapper must not hold ssh's pipes open after the proxy has
     closed them: a reader of ssh's stderr waits for every copy to be closed. */
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    for (int fd = 0; fd <= 2; fd++) dup2(devnull, fd);
    if (devnull > 2) close(devnull);
  }
  if (out) {
    char path[4096];
    snprintf(path, sizeof path, "%s.pid", out);
    FILE *f = fopen(path, "w");
    if (f) {
      fprintf(f, "%d %.3f\n", (int)pid, start);
      fclose(f);
    }
  }
  int status = 0;
  struct rusage ru;
  pid_t r;
  do {
    r = wait4(pid, &status, 0, &ru);
  } while (r < 0 && errno == EINTR);
  double end = epoch_ms();
  if (out && r == pid) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%d %s %d %.6f %.6f %ld %.3f %.3f\n", (int)pid, WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
              (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss, start, end);
      fclose(f);
      rename(tmp, out);
    }
  }
  if (r == pid && WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  if (r == pid && WIFEXITED(status)) return WEXITSTATUS(status);
  return 127;
}
`;

export interface ProxyUsage {
  pid: number;
  how: 'exit' | 'signal';
  code: number;
  userS: number;
  sysS: number;
  cpuS: number;
  maxRssKiB: number;
  startMs: number;
  endMs: number;
}

/** Compiles the wrapper into dir; returns its path, or an error message when no C compiler works. */
export function buildWrapper(dir: string): { path: string } | { error: string } {
  const src = join(dir, 'rusage-wrap.c');
  const bin = join(dir, 'rusage-wrap');
  writeFileSync(src, SOURCE);
  for (const cc of ['cc', 'gcc', 'clang']) {
    const r = spawnSync(cc, ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0 && existsSync(bin)) return { path: bin };
  }
  return { error: 'no working C compiler (cc/gcc/clang): CPU and RSS of the proxy are not measured' };
}

export function parseUsage(text: string): ProxyUsage | undefined {
  const p = text.trim().split(/\s+/);
  if (p.length < 8) return undefined;
  const userS = Number(p[3]);
  const sysS = Number(p[4]);
  return {
    pid: Number(p[0]),
    how: p[1] === 'signal' ? 'signal' : 'exit',
    code: Number(p[2]),
    userS,
    sysS,
    cpuS: userS + sysS,
    maxRssKiB: Number(p[5]),
    startMs: Number(p[6]),
    endMs: Number(p[7]),
  };
}
