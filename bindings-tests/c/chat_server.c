/*
 * chat_server.c: a small chat server in C11 over libswitchboard, using callbacks.
 *
 * - Authentication is the host's, with its own token format: auth {token: "c:<name>"},
 *   <name> being 1-32 letters, digits, '-' or '_'. A worker thread completes the requests
 *   later (the engine never waits on this program's threads).
 * - Room access: rooms starting with "secret-" are refused (answered inside the callback),
 *   and so are documents named so (the room "doc:secret-..."); "access doc:NAME allowed" or
 *   "access doc:NAME refused" is printed for documents.
 * - Collaborative documents at /yjs/NAME?token=c:<name>: the same authentication (printed as
 *   "auth document NAME"), and every update clients make printed as
 *   "document-update NAME BYTES" by the document-update callback.
 * - Message storage: every chat message is printed as "stored <json>" before delivery.
 * - App events, acked through their request id:
 *     presence(room)      -> [{userId, username}]                (sb_engine_presence)
 *     shout({room, text}) -> emits "shout" {from, text} to room  (sb_engine_emit_to_room)
 *     poke()              -> emits "poked" to the caller only    (sb_engine_emit_to_socket)
 *     echo(value)         -> value, answered 50 ms later by the worker thread
 *     fail()              -> {code: "INTERNAL", message: "Internal error"} (the text is logged)
 *     quota()             -> {code: "QUOTA_EXCEEDED", message: "Upgrade your plan"}
 *                            (sb_request_fail_with_code: the host's code reaches the client)
 * - The engine's log events at info and above (sb_set_log_callback) are printed as
 *   "log LEVEL TARGET MESSAGE FIELDS_JSON".
 * - Server-sent events at /events verify JWTs (the auth callback is for Socket.IO and
 *   documents): the environment's SB_JWT_SECRET, when set, is their HS256 secret;
 *   SB_SSE_PING_MS, when set, their keep-alive interval. "kick" ends their streams too, and
 *   "notify" reaches them.
 * - SB_REDIS_URL, when set, makes it a node of that Redis cluster (heartbeat 500 ms).
 * - A second port where the host accepts connections itself, reads the first bytes of each
 *   and hands the socket over with sb_engine_adopt ("adopting on http://127.0.0.1:PORT").
 * - Commands on stdin, one per line: "presence ROOM", "emit ROOM EVENT JSON", "kick USER",
 *   "notify USER EVENT JSON" (EVENT "-": the default "notification"; prints "notified USER N"),
 *   "publish ROOM USER NAME TEXT" (NAME "-": the user id; prints "published ROOM {id,
 *   timestamp}" once stored and delivered, or "publish error CODE: DETAIL"), "rooms" (prints
 *   "rooms [{roomId, members}]"); "quit" (or end of input) frees the engine with its clients
 *   still connected and exits 0. Publishing from this thread is fine: the store requests it
 *   waits for are completed by the worker thread.
 *
 * Every request is completed a second time on purpose, which must give
 * SB_REQUEST_NOT_PENDING; anything else aborts the program.
 *
 * Usage: chat_server [PORT]   (0 or nothing: a free port, printed on stdout)
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "switchboard.h"

enum job_kind { JOB_AUTH, JOB_STORE, JOB_ECHO };

struct job {
    enum job_kind kind;
    sb_request_id request;
    char *text; /* token, or the value to echo; owned by the job (may be NULL) */
    struct job *next;
};

static struct {
    sb_engine *engine;
    mtx_t lock;
    cnd_t ready;
    struct job *head, *tail;
    int stopping;
    mtx_t out; /* one line at a time on stdout */
} app;

static void say(const char *fmt, const char *a, const char *b) {
    mtx_lock(&app.out);
    printf(fmt, a, b);
    fflush(stdout);
    mtx_unlock(&app.out);
}

static void check(sb_result r, const char *what) {
    if (r != SB_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, sb_result_message(r), sb_last_error_message());
        abort();
    }
}

/* Completes a request. SB_REQUEST_NOT_PENDING on a first completion is a normal outcome,
 * not a host bug: the client left, the engine timed the request out or is shutting down.
 * Returns whether this completion was the one that counted. */
static bool complete(sb_result r, const char *what) {
    if (r == SB_REQUEST_NOT_PENDING) {
        fprintf(stderr, "%s: request no longer pending (client gone)\n", what);
        return false;
    }
    check(r, what);
    return true;
}

static char *dup_string(const char *s) {
    char *d;
    if (!s)
        return NULL;
    d = malloc(strlen(s) + 1);
    if (!d)
        abort();
    strcpy(d, s);
    return d;
}

/* Completing a request a second time must be refused with a code, never crash. */
static void expect_not_pending(sb_result r, const char *what) {
    if (r != SB_REQUEST_NOT_PENDING) {
        fprintf(stderr, "%s: second completion gave %d, expected SB_REQUEST_NOT_PENDING\n", what,
                (int)r);
        abort();
    }
}

static void push(enum job_kind kind, sb_request_id request, const char *text) {
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->kind = kind;
    j->request = request;
    j->text = dup_string(text);
    mtx_lock(&app.lock);
    if (app.tail)
        app.tail->next = j;
    else
        app.head = j;
    app.tail = j;
    cnd_signal(&app.ready);
    mtx_unlock(&app.lock);
}

static void free_job(struct job *j) {
    free(j->text);
    free(j);
}

/* "c:<name>" with a plain name gives that name; anything else gives NULL. */
static const char *token_user(const char *token) {
    size_t i, n;
    if (!token || strncmp(token, "c:", 2) != 0)
        return NULL;
    token += 2;
    n = strlen(token);
    if (n == 0 || n > 32)
        return NULL;
    for (i = 0; i < n; i++) {
        char c = token[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
        if (!plain)
            return NULL;
    }
    return token;
}

static void run_job(struct job *j) {
    char user[128];
    const char *name;
    switch (j->kind) {
    case JOB_AUTH:
        if (!j->text) {
            if (complete(sb_auth_request_refuse(j->request, "Authentication required"), "refuse"))
                expect_not_pending(sb_auth_request_refuse(j->request, "again"), "refuse");
        } else if ((name = token_user(j->text)) == NULL) {
            if (complete(sb_auth_request_refuse(j->request, "Invalid token"), "refuse"))
                expect_not_pending(sb_auth_request_accept(j->request, "{\"id\":\"x\"}"), "refuse");
        } else {
            snprintf(user, sizeof user, "{\"id\":\"%s\",\"username\":\"%s (C)\"}", name, name);
            if (complete(sb_auth_request_accept(j->request, user), "accept"))
                expect_not_pending(sb_auth_request_accept(j->request, user), "accept");
        }
        break;
    case JOB_STORE:
        if (complete(sb_store_request_done(j->request), "store"))
            expect_not_pending(sb_store_request_done(j->request), "store");
        break;
    case JOB_ECHO: {
        struct timespec later = {0, 50 * 1000 * 1000};
        thrd_sleep(&later, NULL);
        if (complete(sb_app_event_ack(j->request, j->text ? j->text : "null"), "echo"))
            expect_not_pending(sb_app_event_ack(j->request, "null"), "echo");
        break;
    }
    }
}

static int worker(void *arg) {
    (void)arg;
    for (;;) {
        struct job *j;
        mtx_lock(&app.lock);
        while (!app.head && !app.stopping)
            cnd_wait(&app.ready, &app.lock);
        if (app.stopping) {
            mtx_unlock(&app.lock);
            return 0;
        }
        j = app.head;
        app.head = j->next;
        if (!app.head)
            app.tail = NULL;
        mtx_unlock(&app.lock);
        run_job(j);
        free_job(j);
    }
}

/* ---- callbacks: they run on the engine's threads and return at once ---- */

static void on_auth(void *userdata, sb_request_id request, const char *handshake_json) {
    char *token = NULL, *document = NULL;
    (void)userdata;
    /* Document connections carry the document's name; their token is auth.token too. */
    if (sb_json_get_string(handshake_json, "/document", &document) == SB_OK)
        say("auth document %s%s\n", document, "");
    sb_string_free(document);
    /* Fails when the client sent no token (or not a string): token stays NULL. */
    sb_json_get_string(handshake_json, "/auth/token", &token);
    push(JOB_AUTH, request, token);
    sb_string_free(token);
}

static void on_room_access(void *userdata, sb_request_id request, const char *user_json,
                           const char *room) {
    int document = strncmp(room, "doc:", 4) == 0;
    int allowed = strncmp(document ? room + 4 : room, "secret-", 7) != 0;
    (void)userdata;
    (void)user_json;
    if (document)
        say("access %s %s\n", room, allowed ? "allowed" : "refused");
    if (complete(sb_room_request_answer(request, allowed), "room access"))
        expect_not_pending(sb_room_request_answer(request, true), "room access");
}

/* The name and the bytes are borrowed for the call: only their length is kept here. */
static void on_document_update(void *userdata, const char *doc_name, const uint8_t *update,
                               size_t len) {
    char n[32];
    (void)userdata;
    if (!update || len == 0)
        abort(); /* an update changed the document: never empty */
    snprintf(n, sizeof n, "%zu", len);
    say("document-update %s %s\n", doc_name, n);
}

static void on_store(void *userdata, sb_request_id request, const char *message_json) {
    (void)userdata;
    say("stored %s%s\n", message_json, "");
    push(JOB_STORE, request, NULL);
}

static void on_app_event(void *userdata, sb_request_id request, const char *event,
                         const char *args_json, const char *socket_json) {
    (void)userdata;
    if (strcmp(event, "presence") == 0) {
        char *room = NULL, *members = NULL;
        if (sb_json_get_string(args_json, "/0", &room) != SB_OK) {
            complete(sb_app_event_fail(request, "presence needs a room"), "presence");
        } else {
            check(sb_engine_presence(app.engine, room, &members), "presence");
            complete(sb_app_event_ack(request, members), "presence");
        }
        sb_string_free(room);
        sb_string_free(members);
    } else if (strcmp(event, "shout") == 0) {
        /* {room, text} -> "shout" {from, text} to the room; JSON values are forwarded as
         * JSON text (sb_json_get), so nothing needs escaping here. */
        char *room = NULL, *text = NULL, *from = NULL;
        if (sb_json_get_string(args_json, "/0/room", &room) == SB_OK &&
            sb_json_get(args_json, "/0/text", &text) == SB_OK &&
            sb_json_get(socket_json, "/user/id", &from) == SB_OK) {
            size_t n = strlen(from) + strlen(text) + 32;
            char *shout = malloc(n);
            if (!shout)
                abort();
            snprintf(shout, n, "{\"from\":%s,\"text\":%s}", from, text);
            check(sb_engine_emit_to_room(app.engine, room, "shout", shout), "shout");
            complete(sb_app_event_ack(request, "{\"shouted\":true}"), "shout");
            free(shout);
        } else {
            complete(sb_app_event_fail(request, "shout needs {room, text}"), "shout");
        }
        sb_string_free(room);
        sb_string_free(text);
        sb_string_free(from);
    } else if (strcmp(event, "poke") == 0) {
        char *id = NULL;
        check(sb_json_get_string(socket_json, "/id", &id), "poke");
        check(sb_engine_emit_to_socket(app.engine, id, "poked", "{\"by\":\"host\"}"), "poke");
        complete(sb_app_event_ack(request, "null"), "poke");
        sb_string_free(id);
    } else if (strcmp(event, "echo") == 0) {
        char *value = NULL;
        sb_json_get(args_json, "/0", &value); /* stays NULL without an argument */
        push(JOB_ECHO, request, value);
        sb_string_free(value);
    } else if (strcmp(event, "fail") == 0) {
        if (complete(sb_app_event_fail(request, "echo chamber closed"), "fail"))
            expect_not_pending(sb_app_event_fail(request, "again"), "fail");
    } else if (strcmp(event, "quota") == 0) {
        /* not a code clients could switch on: refused, the request stays pending */
        if (sb_request_fail_with_code(request, "not a code", "x") != SB_INVALID_ARGUMENT)
            fprintf(stderr, "quota: an invalid code was accepted\n");
        complete(sb_request_fail_with_code(request, "QUOTA_EXCEEDED", "Upgrade your plan"), "quota");
    }
}

/* ---- the engine's log: one line per event, from whichever thread logs ---- */

static void on_log(void *userdata, sb_log_level level, const char *target, const char *message,
                   const char *fields_json) {
    (void)userdata;
    /* one printf call: stdio locks the stream, so lines from several threads do not mix */
    printf("log %d %s %s %s\n", (int)level, target, message, fields_json);
    fflush(stdout);
}

/* ---- connections the host accepts itself ---- */

static int listener = -1;

static int acceptor(void *arg) {
    (void)arg;
    for (;;) {
        char head[64];
        ssize_t n;
        sb_result r;
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return 0; /* the listener was shut down */
        /* The host may already have read from the connection: hand those bytes over too. */
        n = recv(fd, head, sizeof head, 0);
        if (n <= 0) {
            close(fd);
            continue;
        }
        r = sb_engine_adopt(app.engine, fd, (const uint8_t *)head, (size_t)n);
        if (r != SB_OK) {
            fprintf(stderr, "adopt: %s: %s\n", sb_result_message(r), sb_last_error_message());
            close(fd); /* refused: still ours */
        }
    }
}

static uint16_t listen_myself(void) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 64) != 0 || getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        abort();
    return ntohs(addr.sin_port);
}

/* Connections and disconnections (sb_connection_callback): one line each. */
static void on_connection(void *userdata, const char *socket_json, const char *reason) {
    (void)userdata;
    if (reason)
        say("disconnected %s %s\n", reason, socket_json);
    else
        say("connected %s%s\n", socket_json, "");
}

/* ---- stdin commands ---- */

static void command(char *line) {
    char *cmd = strtok(line, " \n");
    if (!cmd)
        return;
    if (strcmp(cmd, "presence") == 0) {
        char *room = strtok(NULL, " \n"), *members = NULL;
        if (room && sb_engine_presence(app.engine, room, &members) == SB_OK)
            say("presence %s %s\n", room, members);
        sb_string_free(members);
    } else if (strcmp(cmd, "emit") == 0) {
        char *room = strtok(NULL, " "), *event = strtok(NULL, " "), *json = strtok(NULL, "\n");
        sb_result r = sb_engine_emit_to_room(app.engine, room, event, json);
        say("emit %s %s\n", sb_result_message(r), sb_last_error_message());
    } else if (strcmp(cmd, "emit-rooms") == 0) {
        /* emit-rooms ROOMS_JSON EXCEPT_JSON|- EVENT JSON */
        char *rooms = strtok(NULL, " "), *except = strtok(NULL, " "), *event = strtok(NULL, " ");
        char *json = strtok(NULL, "\n");
        sb_result r = sb_engine_emit_to_rooms(app.engine, rooms,
                                              except && strcmp(except, "-") == 0 ? NULL : except,
                                              event, json);
        say("emit-rooms %s %s\n", sb_result_message(r), sb_last_error_message());
    } else if (strcmp(cmd, "kick") == 0) {
        char *user = strtok(NULL, " \n");
        size_t n = 0;
        char count[32];
        if (!user)
            return;
        check(sb_engine_disconnect_user(app.engine, user, &n), "kick");
        snprintf(count, sizeof count, "%zu", n);
        say("kicked %s %s\n", user, count);
    } else if (strcmp(cmd, "notify") == 0) {
        char *user = strtok(NULL, " "), *event = strtok(NULL, " "), *json = strtok(NULL, "\n");
        size_t n = 0;
        char count[32];
        sb_result r = sb_engine_notify_user(app.engine, user,
                                            event && strcmp(event, "-") == 0 ? NULL : event,
                                            json, &n);
        if (r == SB_OK) {
            snprintf(count, sizeof count, "%zu", n);
            say("notified %s %s\n", user, count);
        } else {
            say("notify error %s: %s\n", sb_result_message(r), sb_last_error_message());
        }
    } else if (strcmp(cmd, "publish") == 0) {
        char *room = strtok(NULL, " "), *user = strtok(NULL, " "), *name = strtok(NULL, " ");
        char *text = strtok(NULL, "\n"), *ack = NULL;
        /* Waits until the message is stored (by the worker thread) and delivered. */
        sb_result r = sb_engine_publish(app.engine, room, user,
                                        name && strcmp(name, "-") == 0 ? NULL : name, text, &ack);
        if (r == SB_OK)
            say("published %s %s\n", room, ack);
        else
            say("publish error %s: %s\n", sb_result_message(r), sb_last_error_message());
        sb_string_free(ack);
    } else if (strcmp(cmd, "rooms") == 0) {
        char *rooms = NULL;
        check(sb_engine_rooms(app.engine, &rooms), "rooms");
        say("rooms %s%s\n", rooms, "");
        sb_string_free(rooms);
    }
}

int main(int argc, char **argv) {
    sb_config *config = NULL;
    uint16_t port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 0);
    const char *events[] = {"presence", "shout", "poke", "echo", "fail", "quota"};
    const char *secret = getenv("SB_JWT_SECRET"), *sse_ping = getenv("SB_SSE_PING_MS");
    const char *tls_cert = getenv("SB_TLS_CERT"), *tls_key = getenv("SB_TLS_KEY");
    const char *redis = getenv("SB_REDIS_URL"), *prefix = getenv("SB_PREFIX");
    char line[4096];
    thrd_t worker_thread, acceptor_thread;
    size_t i;

    if (mtx_init(&app.lock, mtx_plain) != thrd_success || cnd_init(&app.ready) != thrd_success ||
        mtx_init(&app.out, mtx_plain) != thrd_success)
        return 1;
    if (thrd_create(&worker_thread, worker, NULL) != thrd_success)
        return 1;

    check(sb_set_log_callback(on_log, NULL, "switchboard=info"), "log callback");
    check(sb_config_new(&config), "config");
    check(sb_config_set_auth_callback(config, on_auth, NULL), "auth callback");
    check(sb_config_set_room_access_callback(config, on_room_access, NULL), "room callback");
    check(sb_config_set_store_callback(config, on_store, NULL), "store callback");
    for (i = 0; i < sizeof events / sizeof events[0]; i++)
        check(sb_config_add_app_event(config, events[i]), "app event");
    check(sb_config_set_app_event_callback(config, on_app_event, NULL), "app callback");
    check(sb_config_set_document_update_callback(config, on_document_update, NULL), "documents");
    check(sb_config_set_worker_threads(config, 2), "workers");
    if (secret)
        check(sb_config_set_jwt_secret(config, secret), "jwt secret");
    if (sse_ping)
        check(sb_config_set_sse_ping_interval_ms(config, strtoull(sse_ping, NULL, 10)), "sse ping");
    if (tls_cert && tls_key)
        check(sb_config_set_tls(config, tls_cert, tls_key), "tls");
    if (prefix) {
        check(sb_config_set_prefix(config, prefix), "prefix");
        check(sb_config_set_connection_callback(config, on_connection, NULL), "connections");
    }
    if (redis) {
        check(sb_config_set_redis_url(config, redis), "redis");
        check(sb_config_set_cluster_heartbeat_ms(config, 500), "cluster heartbeat");
    }
    check(sb_engine_new(config, &app.engine), "engine");
    sb_config_free(config);
    check(sb_engine_listen(app.engine, "127.0.0.1", port, &port), "listen");
    {
        char p[16];
        snprintf(p, sizeof p, "%u", (unsigned)port);
        say(tls_cert && tls_key ? "switchboard listening on https://127.0.0.1:%s%s\n"
                                : "switchboard listening on http://127.0.0.1:%s%s\n",
            p, "");
        snprintf(p, sizeof p, "%u", (unsigned)listen_myself());
        if (thrd_create(&acceptor_thread, acceptor, NULL) != thrd_success)
            return 1;
        say("adopting on http://127.0.0.1:%s%s\n", p, "");
    }

    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "quit", 4) == 0)
            break;
        command(line);
    }

    /* Stop accepting and the worker (both use the engine), then free the engine with its
     * clients still connected: after sb_engine_free returns no callback runs, so the jobs
     * that callbacks queued meanwhile can be freed. */
    shutdown(listener, SHUT_RDWR);
    thrd_join(acceptor_thread, NULL);
    close(listener);
    mtx_lock(&app.lock);
    app.stopping = 1;
    cnd_broadcast(&app.ready);
    mtx_unlock(&app.lock);
    thrd_join(worker_thread, NULL);
    sb_engine_free(app.engine);
    while (app.head) {
        struct job *j = app.head;
        app.head = j->next;
        free_job(j);
    }
    say("bye%s%s\n", "", "");
    cnd_destroy(&app.ready);
    mtx_destroy(&app.lock);
    mtx_destroy(&app.out);
    return 0;
}
