/*
 * misuse.c: misusing the C API gives result codes, never a crash (run under
 * AddressSanitizer: no error, no leak). Needs no clients: where a request is needed, this
 * program speaks Engine.IO long-polling to the engine over a plain TCP socket itself.
 *
 * Covers NULL handles and arguments, invalid UTF-8, invalid JSON, invalid settings, calls
 * after shutdown, a request completed twice (and with the wrong function, and after its
 * engine shut down), sb_engine_poll_event timeouts and wake-up at shutdown, sb_engine_adopt
 * with bytes already read, shutdown and publish from inside a callback, notify_user, rooms
 * and publish (delivered over polling; waiting on a store request that is failed, done, or
 * cut short by shutdown), TLS files that cannot be served, and the JSON helpers.
 *
 * Prints "misuse: N passed, M failed" and exits non-zero when M > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <threads.h>
#include <unistd.h>

#include "switchboard.h"

static int passed, failed;

static void expect_code(sb_result got, sb_result want, const char *what, int line) {
    if (got == want) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "misuse.c:%d: %s\n  gave %d (%s: %s), expected %d (%s)\n", line, what,
            (int)got, sb_result_message((int)got), sb_last_error_message(), (int)want,
            sb_result_message((int)want));
}

static void expect_true(int ok, const char *what, int line) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "misuse.c:%d: expected %s\n", line, what);
}

#define EXPECT(call, code) expect_code((call), (code), #call, __LINE__)
#define EXPECT_TRUE(cond) expect_true((cond) ? 1 : 0, #cond, __LINE__)

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---- a tiny HTTP/1.1 client for Engine.IO long-polling ---- */

static int tcp_connect(uint16_t port) {
    struct sockaddr_in addr;
    struct timeval timeout = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_text(int fd, const char *text) {
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = send(fd, text + off, n - off, 0);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* Reads until the peer closes (every request says Connection: close) or 5 s pass. */
static void read_all(int fd, char *buf, size_t cap) {
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
}

/* Sends one polling request on a new connection; returns the connection to read from. */
static int polling(uint16_t port, const char *method, const char *sid, const char *body) {
    char req[1024];
    int fd = tcp_connect(port);
    if (fd < 0)
        return -1;
    snprintf(req, sizeof req,
             "%s /socket.io/?EIO=4&transport=polling%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Connection: close\r\nContent-Type: text/plain;charset=UTF-8\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, sid ? "&sid=" : "", sid ? sid : "", body ? strlen(body) : 0,
             body ? body : "");
    send_text(fd, req);
    return fd;
}

/* Opens an Engine.IO session and writes its id to sid (empty on failure). */
static void open_session(uint16_t port, char *sid, size_t cap) {
    char resp[4096];
    const char *at, *end;
    int fd = polling(port, "GET", NULL, NULL);
    sid[0] = '\0';
    if (fd < 0)
        return;
    read_all(fd, resp, sizeof resp);
    close(fd);
    at = strstr(resp, "\"sid\":\"");
    if (!at)
        return;
    at += 7;
    end = strchr(at, '"');
    if (end && (size_t)(end - at) < cap) {
        memcpy(sid, at, (size_t)(end - at));
        sid[end - at] = '\0';
    }
}

/* The body of the last poll of poll_for. */
static char last_poll[8192];

/* Long-polls the session until `needle` arrives (3 polls at most); returns whether it did.
 * Events carry the recovery offset as a last argument: `42["event",data,"<offset>"]`. */
static int poll_for(uint16_t port, const char *sid, const char *needle) {
    char *resp = last_poll;
    size_t cap = sizeof last_poll;
    int i;
    for (i = 0; i < 3; i++) {
        int get = polling(port, "GET", sid, NULL);
        if (get < 0)
            return 0;
        read_all(get, resp, cap);
        close(get);
        if (strstr(resp, needle) != NULL)
            return 1;
    }
    return 0;
}

/* Posts one Engine.IO payload to the session and reads the answer. */
static void post(uint16_t port, const char *sid, const char *body) {
    char resp[1024];
    int fd = polling(port, "POST", sid, body);
    if (fd < 0)
        return;
    read_all(fd, resp, sizeof resp);
    close(fd);
}

/* ---- sections ---- */

static void result_codes(void) {
    int codes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 100};
    size_t i;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = sb_result_message(codes[i]);
        EXPECT_TRUE(m && m[0] && !streq(m, "unknown result code"));
    }
    EXPECT_TRUE(streq(sb_result_message(9999), "unknown result code"));
    EXPECT_TRUE(streq(sb_result_message(-1), "unknown result code"));
    EXPECT_TRUE(sb_version() && sb_version()[0]);
}

static void nulls(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    sb_event *event = NULL;
    char *out = NULL;
    uint16_t port = 0;

    EXPECT(sb_config_new(NULL), SB_NULL_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "out") != NULL);
    EXPECT(sb_config_set_jwt_secret(NULL, "secret"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_ping_interval_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_auth_callback(NULL, NULL, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_document_update_callback(NULL, NULL, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_sse_ping_interval_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_cluster_heartbeat_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_request_timeout_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_upgrade_timeout_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_yjs_idle_unload_ms(NULL, 1000), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_yjs_limits(NULL, 4096, 4096), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_api_key(NULL, "key"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_tls(NULL, "cert.pem", "key.pem"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_prefix(NULL, "/rt"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_sse(NULL, false), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_api(NULL, false), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_yjs(NULL, false), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_metrics(NULL, false), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_healthz(NULL, false), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_connection_callback(NULL, NULL, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_emit_to_rooms(NULL, "[\"a\"]", NULL, "event", "{}"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT_TRUE(streq(sb_last_error_message(), ""));
    EXPECT(sb_config_set_jwt_secret(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_add_app_event(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_new(NULL, &engine), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_new(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_listen(NULL, "127.0.0.1", 0, &port), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_emit_to_room(NULL, "room", "event", "{}"), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_emit_to_user(NULL, "user", "event", "{}"), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_emit_to_socket(NULL, "id", "event", "{}"), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_presence(NULL, "room", &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_stats(NULL, &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_disconnect_user(NULL, "user", NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_notify_user(NULL, "user", NULL, "{}", NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_publish(NULL, "room", "user", NULL, "text", &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_rooms(NULL, &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_disconnect_socket(NULL, "id"), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_adopt(NULL, 0, NULL, 0), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_poll_event(NULL, 0, &event), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_shutdown(NULL, 0), SB_NULL_ARGUMENT);
    EXPECT(sb_auth_request_accept(1, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_app_event_ack(1, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_json_get(NULL, "", &out), SB_NULL_ARGUMENT);
    EXPECT(sb_json_get("{}", NULL, &out), SB_NULL_ARGUMENT);
    EXPECT(sb_json_get("{}", "", NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_json_quote(NULL, &out), SB_NULL_ARGUMENT);
    EXPECT_TRUE(sb_event_get_kind(NULL) == SB_EVENT_NONE);
    EXPECT_TRUE(sb_event_get_request(NULL) == 0);
    EXPECT_TRUE(sb_event_get_name(NULL) == NULL);
    EXPECT_TRUE(sb_event_get_json(NULL) == NULL);
    EXPECT_TRUE(sb_event_get_socket_json(NULL) == NULL);
    EXPECT_TRUE(out == NULL && engine == NULL && event == NULL);
    /* Freeing NULL is a no-op. */
    sb_config_free(NULL);
    sb_engine_free(NULL);
    sb_event_free(NULL);
    sb_string_free(NULL);
    sb_config_free(config);
}

static void invalid_input(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_jwt_secret(config, "\xff\xfe"), SB_INVALID_UTF8);
    EXPECT_TRUE(strstr(sb_last_error_message(), "secret") != NULL);
    EXPECT(sb_config_add_app_event(config, "caf\xc3"), SB_INVALID_UTF8);
    EXPECT(sb_config_set_room_policy(config, "\xc0\xaf"), SB_INVALID_UTF8);
    EXPECT(sb_config_set_jwt_secret(config, ""), SB_INVALID_ARGUMENT);
    /* Short HS256 secrets are forgeable: refused with the minimum in the message. */
    EXPECT(sb_config_set_jwt_secret(config, "short-secret"), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "at least 16 bytes") != NULL);
    EXPECT(sb_config_add_app_event(config, ""), SB_INVALID_ARGUMENT);
    /* A contract event or a Socket.IO reserved name would never reach the host: refused. */
    EXPECT(sb_config_add_app_event(config, "joinRoom"), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "chat contract event") != NULL);
    EXPECT(sb_config_add_app_event(config, "disconnect"), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "reserved by Socket.IO") != NULL);
    EXPECT(sb_config_set_room_policy(config, "closed"), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "room_policy") != NULL);
    EXPECT(sb_config_set_ping_interval_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_ping_timeout_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_max_payload(config, 10), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_rate_limit(config, 5, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_outbound_queue(config, 1, 1), SB_INVALID_CONFIG);
    /* A prefix must be a path: refused with the setting named. */
    EXPECT(sb_config_set_prefix(config, "rt"), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "prefix") != NULL);
    EXPECT(sb_config_set_prefix(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_prefix(config, "/rt"), SB_OK);
    EXPECT(sb_config_set_worker_threads(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_host_callback_timeout_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_event_queue_capacity(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_sse_ping_interval_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "sse_ping_interval") != NULL);
    EXPECT(sb_config_set_cluster_heartbeat_ms(config, 10), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "cluster_heartbeat") != NULL);
    EXPECT(sb_config_set_request_timeout_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "request_timeout") != NULL);
    EXPECT(sb_config_set_upgrade_timeout_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "upgrade_timeout") != NULL);
    EXPECT(sb_config_set_yjs_idle_unload_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_yjs_limits(config, 10, 1 << 20), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "yjs_max_update_bytes") != NULL);
    EXPECT(sb_config_set_yjs_limits(config, 1 << 20, 10), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_api_key(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_api_key(config, ""), SB_INVALID_ARGUMENT);
    EXPECT(sb_config_set_api_key(config, "k\xff"), SB_INVALID_UTF8);
    EXPECT(sb_config_set_sse_ping_interval_ms(config, 500), SB_OK);
    EXPECT(sb_config_set_cluster_heartbeat_ms(config, 500), SB_OK);
    EXPECT(sb_config_set_yjs_idle_unload_ms(config, 1000), SB_OK);
    EXPECT(sb_config_set_yjs_limits(config, 1024, 1 << 20), SB_OK);
    EXPECT(sb_config_set_api_key(config, "key"), SB_OK);
    /* NULL removes the document-update callback. */
    EXPECT(sb_config_set_document_update_callback(config, NULL, NULL), SB_OK);
    EXPECT(sb_config_set_room_policy(config, "claims"), SB_OK);
    EXPECT(sb_config_set_rate_limit(config, 0, 0), SB_OK);
    /* An unusable public key is found when the engine starts. */
    EXPECT(sb_config_set_jwt_public_key_pem(config, "not a PEM key"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(engine == NULL);
    sb_config_free(config);
}

/* Writes `text` to a new file `path`; 1 on success. */
static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = 0;
    return ok;
}

/* The engine's threads block SIGPIPE: a write to a connection its client reset must end that
   connection, not the host (a C program does not ignore SIGPIPE the way Rust programs do;
   the engine's vectored writes cannot ask for MSG_NOSIGNAL). Read from /proc: SigBlk of every
   runtime thread ("switchboard") has the SIGPIPE bit. */
/* Counts the engine's runtime threads ("switchboard") and those of them blocking SIGPIPE. */
static void count_engine_threads(int *threads, int *blocking) {
    DIR *tasks = opendir("/proc/self/task");
    struct dirent *t;
    *threads = *blocking = 0;
    while (tasks && (t = readdir(tasks)) != NULL) {
        char path[300], line[256], comm[64] = "";
        FILE *f;
        if (t->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", t->d_name);
        if ((f = fopen(path, "r")) != NULL) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = '\0';
            fclose(f);
        }
        if (strcmp(comm, "switchboard\n") != 0)
            continue;
        (*threads)++;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", t->d_name);
        if ((f = fopen(path, "r")) != NULL) {
            while (fgets(line, sizeof line, f))
                if (strncmp(line, "SigBlk:", 7) == 0 &&
                    (strtoull(line + 7, NULL, 16) & (1ULL << (SIGPIPE - 1))))
                    (*blocking)++;
            fclose(f);
        }
    }
    if (tasks)
        closedir(tasks);
}

static void engine_threads_block_sigpipe(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    int threads = 0, blocking = 0, tries;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_worker_threads(config, 2), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    sb_config_free(config);
    /* The runtime starts its workers in the background: wait (up to 2 s) for both. */
    for (tries = 0; tries < 200; tries++) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        count_engine_threads(&threads, &blocking);
        if (threads >= 2)
            break;
        thrd_sleep(&pause, NULL);
    }
    EXPECT_TRUE(threads >= 2);
    EXPECT_TRUE(blocking == threads);
    sb_engine_free(engine);
}

/* A Redis URL is checked when the engine starts: a malformed one is SB_INVALID_CONFIG with a
   message that names it; a well-formed one to a Redis that is not there starts anyway (the
   node serves its own clients and joins the cluster when Redis answers). */
static void redis_url(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_redis_url(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_redis_url(config, "not a url"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "not a url") != NULL);
    EXPECT_TRUE(engine == NULL);
    /* Port 1 on the loopback: nothing listens there. */
    EXPECT(sb_config_set_redis_url(config, "redis://127.0.0.1:1"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    EXPECT_TRUE(engine != NULL);
    sb_engine_free(engine);
    sb_config_free(config);
}

/* Identity settings (issue 19): NULLs and bad values refused where they are set, the JWKS URL
   and its CA file when the engine starts, each SB_INVALID_CONFIG with a message saying why. */
static void identity_settings(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_jwks_url(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_set_jwks_ca_file(NULL, "ca.pem"), SB_NULL_ARGUMENT);
    EXPECT(sb_config_add_jwt_issuer(config, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_config_add_jwt_audience(config, "\xff"), SB_INVALID_UTF8);
    EXPECT(sb_config_set_jwks_refetch_interval_ms(config, 10), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "jwks_refetch_interval") != NULL);
    EXPECT(sb_config_set_jwt_leeway_secs(config, 3600), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_jwt_user_id_claim(config, " "), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_jwt_leeway_secs(config, 5), SB_OK);
    EXPECT(sb_config_add_jwt_issuer(config, "https://issuer.example/"), SB_OK);
    EXPECT(sb_config_add_jwt_audience(config, "chat"), SB_OK);
    EXPECT(sb_config_set_jwt_user_id_claim(config, "email"), SB_OK);
    EXPECT(sb_config_set_jwt_username_claim(config, "name"), SB_OK);
    EXPECT(sb_config_set_jwt_allow_no_exp(config, false), SB_OK);
    EXPECT(sb_config_set_token_expiry_warning_secs(config, 10), SB_OK);
    EXPECT(sb_config_set_allow_expired_connections(config, false), SB_OK);

    /* Plain http:// to another host: keys could be replaced on the way. */
    EXPECT(sb_config_set_jwks_url(config, "http://idp.example.com/jwks.json"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "only allowed to a loopback host") != NULL);
    EXPECT_TRUE(engine == NULL);
    /* A CA file that is not there. */
    EXPECT(sb_config_set_jwks_url(config, "https://idp.example.com/jwks.json"), SB_OK);
    EXPECT(sb_config_set_jwks_ca_file(config, "/nonexistent/sb-ca.pem"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "/nonexistent/sb-ca.pem") != NULL);
    EXPECT_TRUE(engine == NULL);
    /* Loopback http:// starts (the key set is fetched when a token needs it). */
    sb_config_free(config);
    config = NULL;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_jwks_url(config, "http://127.0.0.1:1/jwks.json"), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    EXPECT_TRUE(engine != NULL);
    sb_engine_free(engine);
    sb_config_free(config);
}

/* TLS paths are checked when set (NULL, empty, UTF-8) and the files when the engine starts:
   every refusal is SB_INVALID_CONFIG with a message naming the file. */
static void tls_files(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    char dir[] = "/tmp/sb-misuse-tls-XXXXXX", not_pem[64], missing[64];
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_tls(config, NULL, "key.pem"), SB_NULL_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "cert_path") != NULL);
    EXPECT(sb_config_set_tls(config, "cert.pem", NULL), SB_NULL_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "key_path") != NULL);
    EXPECT(sb_config_set_tls(config, "", "key.pem"), SB_INVALID_ARGUMENT);
    EXPECT(sb_config_set_tls(config, "cert\xff.pem", "key.pem"), SB_INVALID_UTF8);
    EXPECT(sb_config_set_jwt_secret(config, "misuse-test-secret"), SB_OK);

    EXPECT_TRUE(mkdtemp(dir) != NULL);
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);
    EXPECT(sb_config_set_tls(config, missing, missing), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "cannot read TLS certificate") != NULL);
    EXPECT_TRUE(strstr(sb_last_error_message(), missing) != NULL);
    EXPECT_TRUE(engine == NULL);

    snprintf(not_pem, sizeof not_pem, "%s/not.pem", dir);
    EXPECT_TRUE(write_file(not_pem, "this is not PEM\n"));
    EXPECT(sb_config_set_tls(config, not_pem, missing), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "no certificate in") != NULL);
    EXPECT_TRUE(strstr(sb_last_error_message(), not_pem) != NULL);
    EXPECT_TRUE(engine == NULL);

    unlink(not_pem);
    rmdir(dir);
    sb_config_free(config);
}

static void json_helpers(void) {
    char *out = NULL;
    const char *doc = "{\"a\":[1,\"x\"],\"auth\":{\"token\":\"c:al\\\"ice\"}}";
    EXPECT(sb_json_get(doc, "/a/1", &out), SB_OK);
    EXPECT_TRUE(streq(out, "\"x\""));
    sb_string_free(out);
    EXPECT(sb_json_get_string(doc, "/auth/token", &out), SB_OK);
    EXPECT_TRUE(streq(out, "c:al\"ice"));
    sb_string_free(out);
    EXPECT(sb_json_get(doc, "", &out), SB_OK);
    EXPECT_TRUE(out && out[0] == '{');
    sb_string_free(out);
    out = NULL;
    EXPECT(sb_json_get_string(doc, "/a/0", &out), SB_INVALID_JSON);
    EXPECT(sb_json_get(doc, "/b", &out), SB_NOT_FOUND);
    EXPECT(sb_json_get(doc, "a", &out), SB_INVALID_ARGUMENT);
    EXPECT(sb_json_get("{", "", &out), SB_INVALID_JSON);
    EXPECT(sb_json_get("{\"a\":\"\xff\"}", "", &out), SB_INVALID_UTF8);
    EXPECT_TRUE(out == NULL);
    EXPECT(sb_json_quote("he said \"hi\"\n", &out), SB_OK);
    EXPECT_TRUE(streq(out, "\"he said \\\"hi\\\"\\n\""));
    sb_string_free(out);
}

struct waiter {
    sb_engine *engine;
    sb_result result;
};

static int poll_forever(void *arg) {
    struct waiter *w = arg;
    sb_event *event = NULL;
    w->result = sb_engine_poll_event(w->engine, -1, &event);
    sb_event_free(event);
    return 0;
}

/* A TCP connection the host accepted itself, handed over after reading 5 bytes of it. */
static void adopt(sb_engine *engine) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0), client, accepted, pipe_fds[2];
    char prefix[5], resp[2048];
    uint16_t port;

    EXPECT(sb_engine_adopt(engine, -1, NULL, 0), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_adopt(engine, 0, NULL, 3), SB_NULL_ARGUMENT);
    EXPECT_TRUE(pipe(pipe_fds) == 0);
    EXPECT(sb_engine_adopt(engine, pipe_fds[0], NULL, 0), SB_IO_ERROR);
    /* Refused: the descriptor is still the host's. */
    EXPECT_TRUE(fcntl(pipe_fds[0], F_GETFD) != -1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_TRUE(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0);
    EXPECT_TRUE(listen(listener, 1) == 0);
    EXPECT_TRUE(getsockname(listener, (struct sockaddr *)&addr, &len) == 0);
    port = ntohs(addr.sin_port);
    client = tcp_connect(port);
    accepted = accept(listener, NULL, NULL);
    close(listener);
    EXPECT_TRUE(client >= 0 && accepted >= 0);
    send_text(client, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(recv(accepted, prefix, sizeof prefix, MSG_WAITALL) == (ssize_t)sizeof prefix);
    EXPECT(sb_engine_adopt(engine, accepted, (const uint8_t *)prefix, sizeof prefix), SB_OK);
    read_all(client, resp, sizeof resp);
    close(client);
    EXPECT_TRUE(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    EXPECT_TRUE(strstr(resp, "{\"status\":\"ok\"}") != NULL);
}

/* notify_user, rooms and publish on an engine where `sid` is alice's connected socket. */
static void notify_publish_rooms(sb_engine *engine, uint16_t port, const char *sid) {
    char *out = NULL, long_text[4100], long_event[140];
    size_t delivered = 99;

    /* notify_user: arguments */
    EXPECT(sb_engine_notify_user(engine, NULL, NULL, "{}", &delivered), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, NULL, &delivered), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_notify_user(engine, "", NULL, "{}", &delivered), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_notify_user(engine, "al\xffice", NULL, "{}", &delivered), SB_INVALID_UTF8);
    EXPECT(sb_engine_notify_user(engine, "alice", "b\xe9ll", "{}", &delivered), SB_INVALID_UTF8);
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, "\"\xfe\"", &delivered), SB_INVALID_UTF8);
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, "{", &delivered), SB_INVALID_JSON);
    EXPECT_TRUE(strstr(sb_last_error_message(), "json") != NULL);
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, "", &delivered), SB_INVALID_JSON);
    EXPECT(sb_engine_notify_user(engine, "alice", "", "{}", &delivered), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_notify_user(engine, "alice", "a\nb", "{}", &delivered), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "control") != NULL);
    memset(long_event, 'e', 129);
    long_event[129] = '\0';
    EXPECT(sb_engine_notify_user(engine, "alice", long_event, "{}", &delivered),
           SB_INVALID_ARGUMENT);
    EXPECT_TRUE(delivered == 99);
    long_event[128] = '\0';
    EXPECT(sb_engine_notify_user(engine, "nobody", long_event, "{}", &delivered), SB_OK);
    EXPECT_TRUE(delivered == 0);
    EXPECT(sb_engine_notify_user(engine, "nobody", NULL, "null", NULL), SB_OK);

    /* notify_user: delivered to alice's socket, default and custom event names */
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, "{\"n\":1}", &delivered), SB_OK);
    EXPECT_TRUE(delivered == 1);
    EXPECT_TRUE(poll_for(port, sid, "42[\"notification\",{\"n\":1}"));
    EXPECT(sb_engine_notify_user(engine, "alice", "bell", "[1,\"two\"]", &delivered), SB_OK);
    EXPECT_TRUE(delivered == 1);
    EXPECT_TRUE(poll_for(port, sid, "42[\"bell\",[1,\"two\"]"));

    /* rooms: none, then alice's */
    EXPECT(sb_engine_rooms(engine, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_rooms(engine, &out), SB_OK);
    EXPECT_TRUE(streq(out, "[]"));
    sb_string_free(out);
    out = NULL;
    post(port, sid, "420[\"joinRoom\",\"lobby\"]");
    EXPECT_TRUE(poll_for(port, sid, "430[null"));
    EXPECT(sb_engine_rooms(engine, &out), SB_OK);
    EXPECT_TRUE(streq(out, "[{\"members\":1,\"roomId\":\"lobby\"}]") ||
                streq(out, "[{\"roomId\":\"lobby\",\"members\":1}]"));
    sb_string_free(out);
    out = NULL;

    /* publish: arguments (nothing is published, *out_json stays NULL) */
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, "hi", NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_publish(engine, NULL, "bot", NULL, "hi", &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_publish(engine, "lobby", NULL, NULL, "hi", &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, NULL, &out), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_publish(engine, "lob\xff" "by", "bot", NULL, "hi", &out), SB_INVALID_UTF8);
    EXPECT(sb_engine_publish(engine, "lobby", "b\xc3", NULL, "hi", &out), SB_INVALID_UTF8);
    EXPECT(sb_engine_publish(engine, "lobby", "bot", "B\xff", "hi", &out), SB_INVALID_UTF8);
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, "h\xfei", &out), SB_INVALID_UTF8);
    EXPECT(sb_engine_publish(engine, "", "bot", NULL, "hi", &out), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_publish(engine, "lobby", "", NULL, "hi", &out), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_publish(engine, "user:alice", "bot", NULL, "hi", &out), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "INVALID_ROOM") != NULL);
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, "  \n", &out), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "INVALID_MESSAGE") != NULL);
    memset(long_text, 'x', 4001);
    long_text[4001] = '\0';
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, long_text, &out), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(out == NULL);

    /* publish: stored, delivered to the room's member, in history, with the given names */
    EXPECT(sb_engine_publish(engine, "lobby", "bot", "The Bot", "from C", &out), SB_OK);
    EXPECT_TRUE(out && strstr(out, "\"id\":\"") != NULL && strstr(out, "\"timestamp\":\"") != NULL);
    EXPECT_TRUE(poll_for(port, sid, "\"text\":\"from C\""));
    sb_string_free(out);
    out = NULL;
    /* an empty username is the user id */
    EXPECT(sb_engine_publish(engine, "lobby", "bot2", "", "second", &out), SB_OK);
    EXPECT_TRUE(poll_for(port, sid, "\"username\":\"bot2\""));
    sb_string_free(out);
    out = NULL;
    post(port, sid, "421[\"getHistory\",{\"roomId\":\"lobby\"}]");
    EXPECT_TRUE(poll_for(port, sid, "431[null,{\"messages\":["));
    EXPECT_TRUE(strstr(last_poll,
                       "\"text\":\"from C\",\"userId\":\"bot\",\"username\":\"The Bot\"") != NULL);
    EXPECT_TRUE(strstr(last_poll, "\"text\":\"second\"") != NULL);
    /* a room nobody is in takes messages too (history) */
    EXPECT(sb_engine_publish(engine, "empty-room", "bot", NULL, "anyone?", &out), SB_OK);
    sb_string_free(out);
    out = NULL;
}

/* A thread that publishes and records what it got. */
struct publisher {
    sb_engine *engine;
    sb_result result;
    char *out;
    char detail[256];
};

static int publish_thread(void *arg) {
    struct publisher *p = arg;
    p->result = sb_engine_publish(p->engine, "news", "bot", NULL, "stored first", &p->out);
    snprintf(p->detail, sizeof p->detail, "%s", sb_last_error_message());
    return 0;
}

/* Publishes on another thread; the store request it waits for arrives here, through the
 * queue. Returns the request id (0 when none came). */
static sb_request_id start_publish(sb_engine *engine, struct publisher *p, thrd_t *thread) {
    sb_event *event = NULL;
    sb_request_id id = 0;
    memset(p, 0, sizeof *p);
    p->engine = engine;
    p->result = SB_PANIC;
    EXPECT_TRUE(thrd_create(thread, publish_thread, p) == thrd_success);
    EXPECT(sb_engine_poll_event(engine, 5000, &event), SB_OK);
    EXPECT_TRUE(sb_event_get_kind(event) == SB_EVENT_STORE);
    EXPECT_TRUE(strstr(sb_event_get_json(event) ? sb_event_get_json(event) : "",
                       "\"text\":\"stored first\"") != NULL);
    id = sb_event_get_request(event);
    sb_event_free(event);
    return id;
}

/* sb_engine_publish waits for the host's store: failed, done, timed out, shut down. */
static void publish_waits_for_the_store(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    struct publisher p;
    sb_request_id request;
    thrd_t thread;

    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_store_callback(config, NULL, NULL), SB_OK);
    EXPECT(sb_config_set_host_callback_timeout_ms(config, 1000), SB_OK);
    EXPECT(sb_config_set_worker_threads(config, 1), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    sb_config_free(config);
    if (!engine)
        return;

    request = start_publish(engine, &p, &thread);
    EXPECT(sb_store_request_fail(request, "disk full"), SB_OK);
    thrd_join(thread, NULL);
    EXPECT(p.result, SB_STORE_FAILED);
    EXPECT_TRUE(strstr(p.detail, "disk full") != NULL);
    EXPECT_TRUE(p.out == NULL);

    request = start_publish(engine, &p, &thread);
    EXPECT(sb_store_request_done(request), SB_OK);
    thrd_join(thread, NULL);
    EXPECT(p.result, SB_OK);
    EXPECT_TRUE(p.out && strstr(p.out, "\"id\"") != NULL);
    sb_string_free(p.out);

    /* not completed within host_callback_timeout */
    request = start_publish(engine, &p, &thread);
    thrd_join(thread, NULL);
    EXPECT(p.result, SB_STORE_FAILED);
    EXPECT_TRUE(strstr(p.detail, "timed out") != NULL);
    EXPECT(sb_store_request_done(request), SB_REQUEST_NOT_PENDING);

    /* shut down while it waits */
    request = start_publish(engine, &p, &thread);
    EXPECT(sb_engine_shutdown(engine, 200), SB_OK);
    thrd_join(thread, NULL);
    EXPECT(p.result, SB_ENGINE_CLOSED);
    EXPECT_TRUE(p.out == NULL);
    EXPECT(sb_store_request_done(request), SB_REQUEST_NOT_PENDING);
    sb_engine_free(engine);
}

/* An engine whose requests arrive through the event queue. */
static void engine_and_requests(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL, *other = NULL;
    sb_event *event = NULL;
    sb_request_id auth, app, pending;
    char *out = NULL, sid[64], sid2[64], resp[4096];
    uint16_t port = 0, port2 = 0;
    int post, post2, found, i;
    size_t count = 99;
    struct waiter waiter;
    thrd_t thread;

    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_auth_callback(config, NULL, NULL), SB_OK);
    EXPECT(sb_config_add_app_event(config, "ping"), SB_OK);
    EXPECT(sb_config_set_worker_threads(config, 1), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    sb_config_free(config);
    if (!engine)
        return;

    EXPECT(sb_engine_listen(engine, "no such host, really", 0, &port), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_listen(engine, "", 0, &port), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_listen(engine, "127.0.0.1", 0, &port), SB_OK);
    EXPECT_TRUE(port != 0);
    EXPECT(sb_engine_listen(engine, "127.0.0.1", port, &port2), SB_BIND_FAILED);
    EXPECT(sb_engine_listen(engine, "localhost", 0, NULL), SB_OK);

    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", "{"), SB_INVALID_JSON);
    EXPECT_TRUE(strstr(sb_last_error_message(), "json") != NULL);
    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", ""), SB_INVALID_JSON);
    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", "{\"a\":1} trailing"), SB_INVALID_JSON);
    EXPECT(sb_engine_emit_to_room(engine, "lobby\xff", "news", "{}"), SB_INVALID_UTF8);
    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", "\"\xfe\""), SB_INVALID_UTF8);
    EXPECT(sb_engine_emit_to_room(engine, "", "news", "{}"), SB_INVALID_ARGUMENT);
    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", "[1,2]"), SB_OK);
    EXPECT(sb_engine_emit_to_user(engine, "alice", "news", "null"), SB_OK);
    EXPECT(sb_engine_emit_to_socket(engine, "nobody", "news", "{}"), SB_NOT_FOUND);
    EXPECT(sb_engine_disconnect_socket(engine, "nobody"), SB_NOT_FOUND);
    EXPECT(sb_engine_disconnect_user(engine, "alice", &count), SB_OK);
    EXPECT_TRUE(count == 0);
    EXPECT(sb_engine_presence(engine, "lobby", NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_presence(engine, "lobby", &out), SB_OK);
    EXPECT_TRUE(streq(out, "[]"));
    sb_string_free(out);
    EXPECT(sb_engine_stats(engine, &out), SB_OK);
    EXPECT_TRUE(out && strstr(out, "\"connections\"") != NULL);
    sb_string_free(out);
    out = NULL;

    EXPECT(sb_engine_poll_event(engine, 0, NULL), SB_NULL_ARGUMENT);
    EXPECT(sb_engine_poll_event(engine, 0, &event), SB_NO_EVENT);
    EXPECT(sb_engine_poll_event(engine, 20, &event), SB_NO_EVENT);
    EXPECT_TRUE(event == NULL);

    adopt(engine);

    /* An authentication request, completed wrongly, then rightly, then twice. */
    open_session(port, sid, sizeof sid);
    EXPECT_TRUE(sid[0] != '\0');
    post = polling(port, "POST", sid, "40{\"token\":\"c:alice\"}");
    EXPECT(sb_engine_poll_event(engine, 5000, &event), SB_OK);
    EXPECT_TRUE(sb_event_get_kind(event) == SB_EVENT_AUTH);
    EXPECT_TRUE(sb_event_get_name(event) == NULL && sb_event_get_socket_json(event) == NULL);
    auth = sb_event_get_request(event);
    EXPECT_TRUE(auth != 0);
    EXPECT(sb_json_get_string(sb_event_get_json(event), "/auth/token", &out), SB_OK);
    EXPECT_TRUE(streq(out, "c:alice"));
    sb_string_free(out);
    out = NULL;
    sb_event_free(event);
    event = NULL;
    EXPECT(sb_room_request_answer(auth, true), SB_WRONG_REQUEST_KIND);
    EXPECT(sb_app_event_ack(auth, "1"), SB_WRONG_REQUEST_KIND);
    EXPECT(sb_auth_request_accept(auth, "{"), SB_INVALID_JSON);
    EXPECT(sb_auth_request_accept(auth, "[\"alice\"]"), SB_INVALID_JSON);
    EXPECT(sb_auth_request_accept(auth, "{\"name\":\"alice\"}"), SB_INVALID_JSON);
    EXPECT(sb_auth_request_accept(auth, "{\"id\":\"alice\",\"rooms\":[1]}"), SB_INVALID_JSON);
    EXPECT(sb_auth_request_accept(auth, "{\"id\":\"\xff\"}"), SB_INVALID_UTF8);
    EXPECT(sb_auth_request_refuse(auth, ""), SB_INVALID_ARGUMENT);
    EXPECT(sb_auth_request_accept(auth, "{\"id\":\"alice\",\"username\":\"Alice\"}"), SB_OK);
    EXPECT(sb_auth_request_accept(auth, "{\"id\":\"alice\"}"), SB_REQUEST_NOT_PENDING);
    EXPECT_TRUE(strstr(sb_last_error_message(), "not pending") != NULL);
    EXPECT(sb_auth_request_refuse(auth, "no"), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_room_request_answer(auth, false), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_store_request_done(0), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_app_event_fail(123456789, "x"), SB_REQUEST_NOT_PENDING);
    read_all(post, resp, sizeof resp);
    close(post);
    EXPECT_TRUE(strstr(resp, "\r\n\r\nok") != NULL);

    /* The socket is connected: an app event with an ack, acked once. */
    post = polling(port, "POST", sid, "421[\"ping\",{\"n\":1}]");
    EXPECT(sb_engine_poll_event(engine, 5000, &event), SB_OK);
    EXPECT_TRUE(sb_event_get_kind(event) == SB_EVENT_APP);
    EXPECT_TRUE(streq(sb_event_get_name(event), "ping"));
    EXPECT_TRUE(streq(sb_event_get_json(event), "[{\"n\":1}]"));
    EXPECT(sb_json_get_string(sb_event_get_socket_json(event), "/user/username", &out), SB_OK);
    EXPECT_TRUE(streq(out, "Alice"));
    sb_string_free(out);
    out = NULL;
    app = sb_event_get_request(event);
    sb_event_free(event);
    event = NULL;
    EXPECT(sb_auth_request_refuse(app, "x"), SB_WRONG_REQUEST_KIND);
    EXPECT(sb_app_event_ack(app, "{pong}"), SB_INVALID_JSON);
    EXPECT(sb_app_event_ack(app, "\"pong\""), SB_OK);
    EXPECT(sb_app_event_ack(app, "\"pong\""), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_app_event_fail(app, "late"), SB_REQUEST_NOT_PENDING);
    read_all(post, resp, sizeof resp);
    close(post);
    for (found = 0, i = 0; i < 3 && !found; i++) {
        int get = polling(port, "GET", sid, NULL);
        read_all(get, resp, sizeof resp);
        close(get);
        found = strstr(resp, "431[null,\"pong\"]") != NULL;
    }
    EXPECT_TRUE(found);

    notify_publish_rooms(engine, port, sid);

    /* A request still pending at shutdown stops being pending. */
    open_session(port, sid2, sizeof sid2);
    post2 = polling(port, "POST", sid2, "40{\"token\":\"c:bob\"}");
    EXPECT(sb_engine_poll_event(engine, 5000, &event), SB_OK);
    pending = sb_event_get_request(event);
    EXPECT_TRUE(sb_event_get_kind(event) == SB_EVENT_AUTH && pending > auth);
    sb_event_free(event);
    event = NULL;

    /* Shutdown wakes a thread waiting for events without a timeout. */
    waiter.engine = engine;
    waiter.result = SB_OK;
    EXPECT_TRUE(thrd_create(&thread, poll_forever, &waiter) == thrd_success);
    {
        struct timespec moment = {0, 100 * 1000 * 1000};
        thrd_sleep(&moment, NULL);
    }
    EXPECT(sb_engine_shutdown(engine, 200), SB_OK);
    thrd_join(thread, NULL);
    EXPECT_TRUE(waiter.result == SB_ENGINE_CLOSED);
    read_all(post2, resp, sizeof resp);
    close(post2);

    /* After shutdown: codes, not crashes. */
    EXPECT(sb_auth_request_accept(pending, "{\"id\":\"bob\"}"), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_engine_shutdown(engine, 0), SB_OK);
    EXPECT(sb_engine_listen(engine, "127.0.0.1", 0, &port2), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_emit_to_room(engine, "lobby", "news", "{}"), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_emit_to_user(engine, "alice", "news", "{}"), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_emit_to_socket(engine, "x", "news", "{}"), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_presence(engine, "lobby", &out), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_stats(engine, &out), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_disconnect_user(engine, "alice", NULL), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_disconnect_socket(engine, "x"), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_notify_user(engine, "alice", NULL, "{}", NULL), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_publish(engine, "lobby", "bot", NULL, "late", &out), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_rooms(engine, &out), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_adopt(engine, 0, NULL, 0), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_poll_event(engine, 0, &event), SB_ENGINE_CLOSED);
    EXPECT(sb_engine_poll_event(engine, -1, &event), SB_ENGINE_CLOSED);
    EXPECT_TRUE(out == NULL && event == NULL);
    sb_engine_free(engine);

    /* A second engine in the same process keeps working. */
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_engine_new(config, &other), SB_OK);
    sb_config_free(config);
    EXPECT(sb_engine_listen(other, "127.0.0.1", 0, NULL), SB_OK);
    sb_engine_free(other);
}

/* sb_engine_shutdown and sb_engine_publish from inside a callback are refused with a code;
 * sb_engine_notify_user, which does not wait, works there. */
static sb_result shutdown_from_callback = SB_OK, publish_from_callback = SB_OK,
                 notify_from_callback = SB_PANIC;
static char *published_from_callback = NULL;

static void refusing_auth(void *userdata, sb_request_id request, const char *handshake_json) {
    sb_engine *engine = *(sb_engine **)userdata;
    (void)handshake_json;
    shutdown_from_callback = sb_engine_shutdown(engine, 0);
    publish_from_callback = sb_engine_publish(engine, "lobby", "bot", NULL, "from a callback",
                                              &published_from_callback);
    notify_from_callback = sb_engine_notify_user(engine, "someone", NULL, "1", NULL);
    sb_auth_request_refuse(request, "go away");
}

static void callback_thread(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    sb_engine *slot = NULL;
    char sid[64], resp[4096];
    uint16_t port = 0;
    int post;

    /* userdata must outlive the engine: it points at `slot`, filled in below. */
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_auth_callback(config, refusing_auth, &slot), SB_OK);
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    sb_config_free(config);
    if (!engine)
        return;
    slot = engine;
    EXPECT(sb_engine_listen(engine, "127.0.0.1", 0, &port), SB_OK);
    open_session(port, sid, sizeof sid);
    post = polling(port, "POST", sid, "40{}");
    read_all(post, resp, sizeof resp);
    close(post);
    EXPECT_TRUE(shutdown_from_callback == SB_WRONG_THREAD);
    EXPECT_TRUE(publish_from_callback == SB_WRONG_THREAD);
    EXPECT_TRUE(published_from_callback == NULL);
    EXPECT_TRUE(notify_from_callback == SB_OK);
    EXPECT_TRUE(strstr(resp, "\r\n\r\nok") != NULL);
    sb_engine_free(engine);
}

/* Issue 18: every setting has a C setter whose refusal names the setting; the log callback
 * and sb_request_fail_with_code refuse bad arguments with codes. */
static int warnings;
static void count_warnings(void *userdata, sb_log_level level, const char *target,
                           const char *message, const char *fields_json) {
    (void)userdata;
    (void)fields_json;
    if (level == SB_LOG_WARN && strcmp(target, "switchboard::engine") == 0 && strstr(message, "CORS"))
        warnings++;
}

static void settings_and_logs(void) {
    sb_config *config = NULL;
    sb_engine *engine = NULL;
    EXPECT(sb_config_new(&config), SB_OK);
    EXPECT(sb_config_set_max_message_chars(config, 0), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(),
                       "invalid `max_message_chars` (sb_config_set_max_message_chars): must be at least 1") != NULL);
    EXPECT(sb_config_set_history_limit(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_max_rooms_per_connection(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_max_signal_bytes(config, 10), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_flood_disconnect_after_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_history_cache_bytes(config, 10), SB_INVALID_CONFIG);
    EXPECT_TRUE(strstr(sb_last_error_message(), "history_cache_bytes") != NULL);
    EXPECT(sb_config_set_yjs_store_max_delay_ms(config, 1), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_yjs_max_awareness_clients(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_yjs_ping_interval_ms(config, 0), SB_INVALID_CONFIG);
    EXPECT(sb_config_set_max_message_chars(config, 9), SB_OK);
    EXPECT(sb_config_set_history_limit(config, 3), SB_OK);

    EXPECT(sb_set_log_callback(count_warnings, NULL, "switchboard=loud"), SB_INVALID_ARGUMENT);
    EXPECT_TRUE(strstr(sb_last_error_message(), "invalid `filter`") != NULL);
    EXPECT(sb_set_log_callback(count_warnings, NULL, "sw\xff"), SB_INVALID_UTF8);
    EXPECT(sb_set_log_callback(count_warnings, NULL, "switchboard=warn"), SB_OK);
    EXPECT(sb_config_set_worker_threads(config, 1), SB_OK);
    /* no CORS origins: the engine warns at start, on this thread, through the callback */
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    EXPECT_TRUE(warnings == 1);
    EXPECT(sb_set_log_callback(NULL, NULL, NULL), SB_OK);
    if (engine) {
        sb_engine_shutdown(engine, 100);
        sb_engine_free(engine);
        engine = NULL;
    }
    EXPECT(sb_engine_new(config, &engine), SB_OK);
    EXPECT_TRUE(warnings == 1); /* turned off */
    if (engine) {
        sb_engine_shutdown(engine, 100);
        sb_engine_free(engine);
    }
    sb_config_free(config);

    EXPECT(sb_request_fail_with_code(12345, "QUOTA_EXCEEDED", "m"), SB_REQUEST_NOT_PENDING);
    EXPECT(sb_request_fail_with_code(12345, "lower", "m"), SB_INVALID_ARGUMENT);
    EXPECT(sb_request_fail_with_code(12345, NULL, "m"), SB_NULL_ARGUMENT);
}

int main(void) {
    result_codes();
    nulls();
    invalid_input();
    tls_files();
    redis_url();
    identity_settings();
    engine_threads_block_sigpipe();
    json_helpers();
    engine_and_requests();
    publish_waits_for_the_store();
    callback_thread();
    settings_and_logs();
    printf("misuse: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
