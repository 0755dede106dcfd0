#include <llama.h>
#include <ggml-rpc.h>
