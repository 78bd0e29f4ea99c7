/* process.h — what the daemon does to its own process: who it runs as (checked before
 * binding, dropped after), its open-files limit, and detaching from the terminal. */
#ifndef KTLSD_PROCESS_H
#define KTLSD_PROCESS_H

#include "common.h"
#include "config.h"

/* Started as root: is there a user to drop to (existing, not uid 0), or an explicit
 * run_as_root / --demo? Decided before anything is bound (and by -t), so a missing user
 * fails at once. -1 with "FILE: what is wrong" in err. Not root: always 0. */
int process_check_privileges(const struct config *cfg, char *err, size_t errlen);

/* After binding: drop root to cfg->user/group (supplementary groups, gid, uid), verify
 * nothing can be regained, clear capabilities, set no_new_privs; the log files root
 * created are handed to the user. 0 when done or nothing to do; -1 (logged) to stop. */
int process_drop_privileges(const struct config *cfg);

/* Raise RLIMIT_NOFILE to limits.nofile (0: the hard limit), logging what was set and
 * warning when it is below max_connections. Before the privilege drop. */
void process_set_nofile(const struct config *cfg);

/* Fork into the background (new session, stdin/stdout to /dev/null). The parent waits
 * until the child writes one byte to *ready_fd (0: ready; anything else or EOF: failed)
 * and exits with it, so the exit status of the starting command tells whether the
 * server came up. -1 if fork or pipe failed (in the only process). */
int process_detach(int *ready_fd);

#endif
