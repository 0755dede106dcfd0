// pkg-config json-c puts its include directory (…/include/json-c) on the path.
#include <json.h>
