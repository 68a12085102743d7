/*
 * The shortest useful embedding of Switchboard: a Socket.IO chat server (rooms, presence,
 * typing, messages with history) with JWT authentication, on its own threads.
 *
 *   make -C examples/c && SWITCHBOARD_JWT_SECRET=dev-secret-change-me examples/c/build/chat 3000
 *
 * Clients connect with socket.io-client: io("http://127.0.0.1:3000", {auth: {token}}).
 * Press Enter to stop.
 */
#include <stdio.h>
#include <stdlib.h>

#include "switchboard.h"

static int ok(sb_result r, const char *what) {
    if (r != SB_OK)
        fprintf(stderr, "%s: %s: %s\n", what, sb_result_message(r), sb_last_error_message());
    return r == SB_OK;
}

int main(int argc, char **argv) {
    const char *secret = getenv("SWITCHBOARD_JWT_SECRET");
    uint16_t port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 3000);
    sb_config *config = NULL;
    sb_engine *engine = NULL;

    int started = ok(sb_config_new(&config), "config") &&
                  ok(sb_config_set_jwt_secret(config, secret ? secret : "dev-secret-change-me"),
                     "jwt secret") &&
                  ok(sb_engine_new(config, &engine), "engine") &&
                  ok(sb_engine_listen(engine, "127.0.0.1", port, &port), "listen");
    sb_config_free(config);
    if (started) {
        /* The library linked at run time, and the header this program was compiled with. */
        printf("libswitchboard %s (switchboard.h %d.%d.%d)\n", sb_version(), SB_VERSION_MAJOR,
               SB_VERSION_MINOR, SB_VERSION_PATCH);
        printf("switchboard listening on http://127.0.0.1:%u\n", (unsigned)port);
        fflush(stdout);
        getchar();
        ok(sb_engine_emit_to_room(engine, "lobby", "notice", "{\"text\":\"server stopping\"}"),
           "emit");
    }
    sb_engine_free(engine); /* closes every connection; NULL is fine */
    return started ? 0 : 1;
}
