/* statscli.h — `ktlsd stats [--watch]`: show a running daemon's /stats/text. */
#ifndef KTLSD_STATSCLI_H
#define KTLSD_STATSCLI_H

/* argv[0] is "stats". Returns the process exit status (0 ok, 1 unreachable, 2 usage). */
int statscli_main(int argc, char **argv);

#endif
