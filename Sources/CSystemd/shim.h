// Without this, sd_journal_sendv is a macro stamping the *shim's* file and line on every entry;
// the Swift side adds CODE_FILE/CODE_LINE/CODE_FUNC of the real caller itself.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
