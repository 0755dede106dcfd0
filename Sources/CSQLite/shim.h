// The system SQLite (Debian 12: 3.40), found through pkg-config sqlite3. SQLITE_TRANSIENT is a
// cast macro Swift cannot import; the JobStore module spells it itself.
#include <sqlite3.h>
