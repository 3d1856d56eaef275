// What is left of a session container's holder and init (container.py) once each has forked: both replace
// themselves with this program, so that of the session's three processes only the main one keeps Sage's memory.
//   sagews-holder INIT FD   waits for INIT (its child), reads how the main process ended from the report pipe FD
//                           ("code N" or "signal N"), and ends the same way: the forkserver's waitpid of the holder
//                           sees the main process's real end
//   sagews-init MAIN FD     pid 1 of the session's pid namespace: reaps every child until MAIN ends, writes how it
//                           ended to FD and exits 0; Linux then kills whatever is left in the namespace
// The role is argv[0], which is also the process's name (comm). Built by src/setup/setup.mjs into build/sagews-reaper.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/** What the holder exits with when it cannot do its job, as container.py's holder does when it fails. */
#define FAILED 70
#define REPORT_MAX 64

static void fail(const char *what) {
  dprintf(2, "sagews-reaper: %s: %s\n", what, strerror(errno));
  _exit(FAILED);
}

/** The decimal number `text` if it lies in [min, max], else -1. */
static int number(const char *text, long min, long max) {
  char *end;
  errno = 0;
  long n = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || n < min || n > max) return -1;
  return (int)n;
}

/** Exits with the main process's code, or dies of its signal (with no core dump: RLIMIT_CORE is 0). */
static void exit_like(const char *report, int status) {
  int code, sig;
  if (sscanf(report, "code %d", &code) == 1 && code >= 0 && code <= 255) _exit(code);
  if (sscanf(report, "signal %d", &sig) != 1 || sig < 1 || sig >= NSIG) {
    // no report: init itself ended without one (killed, or it lost its main process)
    if (!WIFSIGNALED(status)) _exit(WEXITSTATUS(status));
    sig = SIGKILL;
  }
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  if (sig != SIGKILL && sig != SIGSTOP) {
    signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
  }
  kill(getpid(), sig);
  _exit(128 + sig);  // a signal whose default is to be ignored
}

static int holder(pid_t init, int report) {
  int status;
  while (waitpid(init, &status, 0) < 0)
    if (errno != EINTR) fail("waitpid(init)");
  char text[REPORT_MAX + 1];
  ssize_t n;
  do n = read(report, text, REPORT_MAX);
  while (n < 0 && errno == EINTR);
  text[n > 0 ? n : 0] = '\0';
  exit_like(text, status);
  return FAILED;
}

static int init(pid_t main_pid, int report) {
  // Set before the execve and kept by it (same credentials, no setuid): asserted again all the same.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (;;) {
    int status;
    pid_t child = waitpid(-1, &status, 0);
    if (child < 0) {
      if (errno == EINTR) continue;
      _exit(0);  // ECHILD: the main process is gone without being seen, and the holder reports init's end
    }
    if (child != main_pid) continue;  // an orphan of user code
    char text[REPORT_MAX];
    int len = WIFSIGNALED(status) ? snprintf(text, sizeof text, "signal %d", WTERMSIG(status))
                                  : snprintf(text, sizeof text, "code %d", WEXITSTATUS(status));
    ssize_t written;
    do written = write(report, text, len);
    while (written < 0 && errno == EINTR);
    _exit(0);
  }
}

int main(int argc, char **argv) {
  const char *role = argc > 0 ? strrchr(argv[0], '/') : NULL;
  role = role ? role + 1 : argc > 0 ? argv[0] : "";
  int pid = argc == 3 ? number(argv[1], 1, INT_MAX) : -1;
  int report = argc == 3 ? number(argv[2], 0, INT_MAX) : -1;
  if (pid < 0 || report < 0 || (strcmp(role, "sagews-holder") != 0 && strcmp(role, "sagews-init") != 0)) {
    dprintf(2, "usage: sagews-holder INIT_PID REPORT_FD | sagews-init MAIN_PID REPORT_FD (got %d arguments as %s)\n", argc - 1, role);
    return FAILED;
  }
  prctl(PR_SET_NAME, role, 0, 0, 0);
  // An inherited SIG_IGN would make the kernel reap children itself and waitpid never see them end.
  signal(SIGCHLD, SIG_DFL);
  return strcmp(role, "sagews-holder") == 0 ? holder(pid, report) : init(pid, report);
}
