/*
 * SPDX-License-Identifier: MIT
 *
 * No lost request (issue 7, races and faults).  The sweep shuts down
 * connections that never received a byte; a client may send its request at
 * that very moment.  Required: every request a client sent is either
 * answered in full, or its connection ends without the server having read a
 * byte of it (the client can safely resend it: RFC 9112 §9.3.1).  Never a
 * request the server read and left unanswered.
 *
 * Each round starts rel_nolost (hyper 0.14's shutdown, thread per
 * connection) under the shim and opens connections of five kinds:
 *   pre    preconnects: never send (the shim must release them)
 *   one    one request, at a random moment around SIGINT: before it, long
 *          after it, and (half of them) in the first milliseconds after it,
 *          while the sweep runs
 *   ka     keep-alive: one request well before SIGINT, a second one around it
 *   slow   a request the server is still processing at SIGINT
 *   late   connect after SIGINT (accepted while the server lingers, or
 *          refused) and send soon after: the accept kicks the sweeper
 *   tls    a handshake-shaped exchange well before SIGINT (HELLO, answered
 *          HI: bytes in, bytes out, as a TLS handshake looks to the shim),
 *          then for half of them one request around SIGINT, for the other
 *          half nothing (an HTTPS preconnect: the default settings must
 *          release it)
 *   tls13  the same in TLS-shaped records, as a TLS 1.3 server without
 *          session tickets sees them: a handshake record answered HI, then
 *          the client's "Finished" (an application-data record) and silence:
 *          the client spoke last, and only the shim's TLS classifier can
 *          tell there is no request; requests come in application-data
 *          records
 * then sends SIGINT, and plays every client on one thread (one poll loop,
 * sends scheduled to the microsecond).  The server records each request it
 * read and each answer it wrote (one write(2) per line); the test joins that
 * with what each client saw.  Everything is counted, and one summary line
 * per scenario goes to stderr.
 *
 * NOLOST_ROUNDS=n overrides the number of rounds of the main scenario (soak
 * runs), NOLOST_SEED=n replays a run (the seed is in the summary line).
 */
#include "rel.h"

#include "../fixtures/nolost.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct server srv;
static char dir[64];

static void teardown(void)
{
	harness_teardown();
	rel_rmtree(dir);
}

TestSuite(nolost, .fini = teardown, .timeout = 150);

#define SETUP_US 60000L /* connections opened this long before SIGINT */
/* The server must exit within this after SIGINT: it does not hang (a hang
 * is forever).  Milliseconds on an idle machine, but a median of 1.1 s and a
 * maximum of 3.2 s under TSan with two CPU hogs: generous. */
#define EXIT_BOUND_MS 10000
#define MAX_CONNS 64
#define MAX_NOTES 6

enum kind { K_PRE, K_ONE, K_KA, K_SLOW, K_LATE, K_TLS, K_TLS13, K_KINDS };
static const char *const kind_name[K_KINDS] = {"pre", "one", "ka", "slow", "late", "tls", "tls13"};

enum outcome {
	O_NONE,     /* no outcome (yet) */
	O_ANSWERED, /* the full, exact response */
	O_UNREAD,   /* EOF or reset without a byte of response: safe to resend */
	O_NOT_SENT, /* refused connection, or send() failed: never left the client */
	O_PARTIAL,  /* part of the response, then EOF: a violation */
	O_WRONG,    /* bytes that are not the response: a violation */
};

struct req {
	long id;
	long at_us; /* scheduled send, relative to SIGINT */
	int delay_ms;
	bool sent, after_eof;
	long sent_us;
	size_t got;
	enum outcome out;
};

struct conn {
	enum kind kind;
	int fd;
	long connect_us; /* late connections only */
	long hello_us;   /* tls connections only: when HELLO is sent */
	bool hello_sent, fin_sent;
	size_t hello_got; /* bytes of NOLOST_HI received */
	bool connected, refused, eof;
	int nreq, nsent;
	struct req req[2];
};

struct scenario {
	const char *name;
	int rounds;
	int n[K_KINDS];
	long win_lo_us, win_hi_us; /* the send window around SIGINT */
	bool hot;                  /* half the sends land where the sweep runs */
	long late_hi_us;           /* late connections: connect in [0, late_hi_us] */
	long late_send_hi_us;      /* and send after connect + [0, late_send_hi_us] */
	long ka_first_lo_us;       /* keep-alive first request in [ka_first_lo_us, -5 ms] */
	int slow_ms;
	int linger_ms; /* even rounds; odd rounds close the listener at once */
	bool wait_idle;
	bool expect_losses; /* the oracle's own check: do not keep the rounds */
	bool settle;        /* SIGINT only once the server read every slow request
			     * and answered every other one (see settled()) */
	const char *env[4];
};

struct totals {
	int rounds, conns, kind[K_KINDS], pre_released, refused, tls_pre, tls_released;
	int tls13_pre, tls13_released;
	int sent_before, sent_after, sent_hot, sent_after_eof;
	int answered, unread, not_sent, hot_answered, hot_unread;
	int violations, shim_released, shim_cut;
	int unanswered_logged, unread_unaware;
	long exit_ms[512], sweep_us[512];
	int nexit, nsweep;
	bool hung;                 /* a server did not exit: the remaining rounds are skipped */
	long hot_lo_us, hot_hi_us; /* this round's hot window */
	char notes[MAX_NOTES][256];
};

static unsigned long long rng_state;

static unsigned long long rng(void)
{
	/* xorshift64*: reproducible from the printed seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static long uniform(long lo, long hi)
{
	return lo + (long)(rng() % (unsigned long long)(hi - lo + 1));
}

static unsigned long long seed_once(void)
{
	static unsigned long long seed;
	if (!seed) {
		const char *s = getenv("NOLOST_SEED");
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = s && *s ? strtoull(s, NULL, 10)
			       : (unsigned long long)ts.tv_nsec ^ (unsigned long long)getpid()
									  << 32;
		if (!seed)
			seed = 1;
	}
	return seed;
}

static long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

__attribute__((format(printf, 2, 3))) static void violation(struct totals *t, const char *fmt, ...)
{
	if (t->violations < MAX_NOTES) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(t->notes[t->violations], sizeof t->notes[0], fmt, ap);
		va_end(ap);
	}
	t->violations++;
}

static const char *outcome_name(enum outcome o)
{
	switch (o) {
	case O_NONE:
		return "no outcome";
	case O_ANSWERED:
		return "the full answer";
	case O_UNREAD:
		return "EOF/reset without a byte";
	case O_NOT_SENT:
		return "not sent";
	case O_PARTIAL:
		return "part of the answer, then EOF";
	case O_WRONG:
		return "wrong bytes";
	}
	return "?";
}

/* A send time around SIGINT: half uniform over the window, half in the hot
 * window, where the sweep runs. */
static long around_signal(const struct scenario *sc, const struct totals *t)
{
	return sc->hot && rng() % 2 ? uniform(t->hot_lo_us, t->hot_hi_us)
				    : uniform(sc->win_lo_us, sc->win_hi_us);
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static long median(const long *v, int n)
{
	long tmp[512];
	n = n < 512 ? n : 512;
	if (!n)
		return -1;
	memcpy(tmp, v, (size_t)n * sizeof *v);
	qsort(tmp, (size_t)n, sizeof *tmp, cmp_long);
	return tmp[n / 2];
}

/* The sweep starts some hundreds of microseconds after kill() (signal
 * delivery, the sweeper's wake-up), more on a loaded machine: the hot
 * window follows where the first release was seen in earlier rounds. */
static void aim(struct totals *t)
{
	long first = t->nsweep ? median(t->sweep_us, t->nsweep) : 800;
	t->hot_lo_us = first > 700 ? first - 700 : 0;
	t->hot_hi_us = first + 1300;
}

static int plan(const struct scenario *sc, struct conn *cs, const struct totals *t)
{
	int n = 0;
	long id = 0;
	for (int k = 0; k < K_KINDS; k++) {
		for (int i = 0; i < sc->n[k] && n < MAX_CONNS; i++) {
			struct conn *c = &cs[n++];
			memset(c, 0, sizeof *c);
			c->kind = (enum kind)k;
			c->fd = -1;
			struct req *r = c->req;
			switch (c->kind) {
			case K_PRE:
				break;
			case K_ONE:
				r[c->nreq++] = (struct req){.id = id++,
							    .at_us = around_signal(sc, t)};
				break;
			case K_KA:
				r[c->nreq++] = (struct req){
					.id = id++, .at_us = uniform(sc->ka_first_lo_us, -5000)};
				r[c->nreq++] = (struct req){.id = id++,
							    .at_us = around_signal(sc, t)};
				break;
			case K_SLOW:
				r[c->nreq++] = (struct req){.id = id++,
							    .at_us = uniform(-30000, -5000),
							    .delay_ms = sc->slow_ms};
				break;
			case K_LATE:
				c->connect_us = uniform(0, sc->late_hi_us);
				r[c->nreq++] = (struct req){
					.id = id++,
					.at_us = c->connect_us + uniform(0, sc->late_send_hi_us)};
				break;
			case K_TLS:
			case K_TLS13:
				c->hello_us = uniform(sc->ka_first_lo_us, -5000);
				if (rng() % 2)
					r[c->nreq++] = (struct req){.id = id++,
								    .at_us = around_signal(sc, t)};
				break;
			case K_KINDS:
				break;
			}
		}
	}
	return n;
}

/* The request awaiting its response on c, if any. */
static struct req *outstanding(struct conn *c)
{
	for (int i = 0; i < c->nsent; i++)
		if (c->req[i].out == O_NONE)
			return &c->req[i];
	return NULL;
}

static void on_eof(struct conn *c)
{
	struct req *r = outstanding(c);
	c->eof = true;
	if (r)
		r->out = r->got ? O_PARTIAL : O_UNREAD;
}

static void consume(struct conn *c, const char *p, size_t n, struct totals *t)
{
	char want[NOLOST_RESP_MAX];
	while (n > 0 && (c->kind == K_TLS || c->kind == K_TLS13) &&
	       c->hello_got < sizeof NOLOST_HI - 1) {
		size_t left = sizeof NOLOST_HI - 1 - c->hello_got, take = n < left ? n : left;
		if (memcmp(p, NOLOST_HI + c->hello_got, take)) {
			violation(t, "tls connection: the handshake's answer was wrong bytes");
			return;
		}
		c->hello_got += take;
		p += take;
		n -= take;
	}
	while (n > 0) {
		struct req *r = outstanding(c);
		if (!r) {
			violation(t, "%s connection: %zu byte(s) nobody asked for",
				  kind_name[c->kind], n);
			return;
		}
		size_t len = nolost_response(want, sizeof want, r->id);
		size_t take = n < len - r->got ? n : len - r->got;
		if (memcmp(p, want + r->got, take)) {
			r->out = O_WRONG;
			return;
		}
		r->got += take;
		p += take;
		n -= take;
		if (r->got == len)
			r->out = O_ANSWERED;
	}
}

static void drain(struct conn *c, struct totals *t)
{
	char buf[4096];
	while (!c->eof) {
		ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) { /* EOF, or a reset (ECONNRESET): the same to a client */
			on_eof(c);
			return;
		}
		consume(c, buf, (size_t)r, t);
	}
}

static void late_connect(struct conn *c, int port)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c->fd >= 0);
	if (connect(c->fd, (struct sockaddr *)&in, sizeof in) == 0) {
		c->connected = true;
	} else {
		/* Refused, or reset: the listener closed with this connection
		 * still in its queue (seen once under load).  Either way the
		 * server never read from it. */
		cr_assert(errno == ECONNREFUSED || errno == ECONNRESET, "connect: %s",
			  strerror(errno));
		c->refused = true;
		for (int i = 0; i < c->nreq; i++)
			c->req[i].out = O_NOT_SENT;
	}
}

static void send_req(struct conn *c, struct req *r, long now, struct totals *t)
{
	char line[64];
	unsigned char rec[80];
	drain(c, t); /* did the connection end before this send? */
	int n = snprintf(line, sizeof line, "REQ %ld %d\n", r->id, r->delay_ms);
	const void *p = line;
	if (c->kind == K_TLS13) { /* in one application-data record */
		n = (int)nolost_record(rec, 23, line, (size_t)n);
		p = rec;
	}
	ssize_t w;
	do
		w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	c->nsent++;
	r->sent_us = now;
	r->after_eof = c->eof;
	if (w != n) {
		/* EPIPE, ECONNRESET: the kernel took nothing; a short write of a
		 * few bytes on an empty socket does not happen. */
		cr_assert(w < 0, "short send of %zd bytes", w);
		r->out = O_NOT_SENT;
		return;
	}
	r->sent = true;
	if (c->eof)
		r->out = O_UNREAD; /* the client knows no answer can come */
}

/* A handshake record was sent (w: send's result).  A reset before it is
 * the end of a connection that carried no request: the server closed its
 * listener with the connection still in the queue (seen under load: the
 * server had not accepted it when SIGINT came).  The requests behind it
 * then never leave the client (O_NOT_SENT); what the connection says
 * (EOF, reset) is read as usual. */
static void hello_sent(struct conn *c, ssize_t w, size_t len, const char *what, struct totals *t)
{
	if (w < 0 && (errno == ECONNRESET || errno == EPIPE))
		drain(c, t);
	else
		cr_assert_eq(w, (ssize_t)len, "%s: %s", what, strerror(errno));
	c->hello_sent = true;
}

static bool all_resolved(const struct conn *cs, int n)
{
	for (int i = 0; i < n; i++) {
		if (!cs[i].refused && !cs[i].eof)
			return false;
		for (int j = 0; j < cs[i].nreq; j++)
			if (cs[i].req[j].out == O_NONE)
				return false;
	}
	return true;
}

/* What the server recorded, by request id. */
struct server_log {
	unsigned char read[MAX_CONNS * 2], answered[MAX_CONNS * 2];
	int unanswered, partial, bad, unknown;
};

static void parse_server_log(const char *path, struct server_log *l, int nids, struct totals *t)
{
	static char buf[65536];
	memset(l, 0, sizeof *l);
	cr_assert_not_null(rel_slurp(path, buf, sizeof buf), "server log %s", path);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		long id, e;
		size_t b;
		if (sscanf(line, "read %ld", &id) == 1 && id >= 0 && id < nids)
			l->read[id]++;
		else if (sscanf(line, "answered %ld", &id) == 1 && id >= 0 && id < nids)
			l->answered[id]++;
		else if (sscanf(line, "unanswered %ld %ld", &id, &e) == 2) {
			l->unanswered++;
			violation(t, "server: request %ld read, its answer failed: %s", id,
				  strerror((int)e));
		} else if (sscanf(line, "partial %zu", &b) == 1) {
			l->partial++;
			violation(t,
				  "server: a connection ended with %zu byte(s) of a request read",
				  b);
		} else if (sscanf(line, "bad %zu", &b) == 1) {
			l->bad++;
			violation(t, "server: malformed request (%zu bytes)", b);
		} else {
			l->unknown++;
			violation(t, "server log: unexpected line \"%.80s\"", line);
		}
	}
}

static char shim_buf[262144];

static int count_lines_with(const char *needle)
{
	int n = 0;
	for (char *p = shim_buf; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Microseconds from kill() (kill_rt: CLOCK_REALTIME) to the shim's first
 * release in its log, or LONG_MIN.  Log lines start with local time
 * "YYYY-MM-DDTHH:MM:SS.uuuuuu"; the offset is far below a minute, so
 * seconds and microseconds are enough. */
static long first_release_us(const struct timespec *kill_rt)
{
	char *p = strstr(shim_buf, " shut down (");
	if (!p)
		return LONG_MIN;
	while (p > shim_buf && p[-1] != '\n')
		p--;
	int sec;
	long usec;
	if (sscanf(p, "%*d-%*d-%*dT%*d:%*d:%d.%6ld", &sec, &usec) != 2)
		return LONG_MIN;
	long d = (sec * 1000000L + usec) -
		 ((kill_rt->tv_sec % 60) * 1000000L + kill_rt->tv_nsec / 1000);
	if (d < -30000000L)
		d += 60000000L;
	return d;
}

/* The state a scenario with .settle wants at SIGINT, from the server's
 * own log: every request sent (all of them are planned before SIGINT) and
 * read, the slow ones not answered yet,
 * every other one answered.  On a loaded machine (TSan, two CPU hogs) a
 * request sent 5 ms before SIGINT may not even be read by then: the drain
 * timeout would find nothing in progress to cut. */
static bool settled(const struct conn *cs, int n, const char *log_path)
{
	static char buf[65536];
	if (!rel_slurp(log_path, buf, sizeof buf))
		return false;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < cs[i].nreq; j++) {
			const struct req *r = &cs[i].req[j];
			char want[48];
			if (r->out == O_NOT_SENT)
				continue; /* refused or reset: nothing to wait for */
			if (!r->sent)
				return false; /* planned before SIGINT, not sent yet (a
					       * descheduled test) */
			snprintf(want, sizeof want, "%s %ld\n", r->delay_ms ? "read" : "answered",
				 r->id);
			/* at a line start: "read 1\n" must not match "read 11\n" */
			bool found = !strncmp(buf, want, strlen(want));
			for (const char *p = buf; !found && (p = strstr(p, want)); p++)
				found = p[-1] == '\n';
			if (!found)
				return false;
		}
	return true;
}

static void run_round(const struct scenario *sc, int round, struct totals *t)
{
	struct conn cs[MAX_CONNS];
	char log_path[128], shim_log[160], linger[16];
	static char shim_log_env[200];
	const char *args[8] = {"rel_nolost", "--log", log_path, NULL};
	const char *env[8];
	int na = 3, ne = 0;

	rel_tmpdir(dir, sizeof dir);
	snprintf(log_path, sizeof log_path, "%s/server.log", dir);
	snprintf(shim_log, sizeof shim_log, "%s/shim.log", dir);
	snprintf(shim_log_env, sizeof shim_log_env, "GRACESHIM_LOG_FILE=%s", shim_log);
	int lg = round % 2 == 0 ? sc->linger_ms : 0;
	if (lg) {
		snprintf(linger, sizeof linger, "%d", lg);
		args[na++] = "--linger-accept-ms";
		args[na++] = linger;
	}
	if (sc->wait_idle)
		args[na++] = "--wait-idle";
	args[na] = NULL;
	env[ne++] = "GRACESHIM_LOG=debug";
	env[ne++] = shim_log_env;
	for (int i = 0; sc->env[i]; i++)
		env[ne++] = sc->env[i];
	env[ne] = NULL;

	aim(t);
	int n = plan(sc, cs, t);
	server_start(&srv, true, args, env);
	for (int i = 0; i < n; i++) {
		if (cs[i].kind != K_LATE) {
			cs[i].fd = tcp_connect(AF_INET, srv.port);
			cs[i].connected = true;
		}
	}

	long base = now_us() + SETUP_US, end = base + (EXIT_BOUND_MS + 2000) * 1000L, exit_us = -1;
	/* .settle: SIGINT waits for the server, within half the slow requests'
	 * processing time (they must still be in progress at the drain timeout). */
	long settle_by = base + (long)sc->slow_ms * 1000 / 2;
	bool signalled = false;
	struct timespec kill_rt = {0, 0};
	for (;;) {
		long now = now_us() - base, next = LONG_MAX;
		if (!signalled && now >= 0 && sc->settle && now_us() < settle_by &&
		    !settled(cs, n, log_path)) {
			/* Everything planned before SIGINT was sent (its times are
			 * negative); move SIGINT, and every time after it, 1 ms on. */
			long shift = now + 1000;
			base += shift;
			end += shift;
			now -= shift;
		}
		if (!signalled && now >= 0) {
			clock_gettime(CLOCK_REALTIME, &kill_rt);
			kill(srv.pid, SIGINT);
			signalled = true;
		}
		if (!signalled)
			next = 0;
		for (int i = 0; i < n; i++) {
			struct conn *c = &cs[i];
			if (!c->connected && !c->refused) {
				if (now >= c->connect_us)
					late_connect(c, srv.port);
				else if (c->connect_us < next)
					next = c->connect_us;
			}
			if (c->connected && (c->kind == K_TLS || c->kind == K_TLS13) &&
			    !c->hello_sent) {
				if (now >= c->hello_us) {
					unsigned char rec[300];
					size_t len = sizeof NOLOST_HELLO - 1;
					const void *p = NOLOST_HELLO;
					if (c->kind == K_TLS13) { /* a "ClientHello" */
						len = nolost_record(rec, 22, NULL, 250);
						p = rec;
					}
					ssize_t w = send(c->fd, p, len,
							 MSG_NOSIGNAL | MSG_DONTWAIT);
					hello_sent(c, w, len, "hello", t);
				} else if (c->hello_us < next) {
					next = c->hello_us;
				}
			}
			/* the "Finished": as soon as the server's flight is in */
			if (c->kind == K_TLS13 && !c->fin_sent && !c->eof &&
			    c->hello_got == sizeof NOLOST_HI - 1) {
				unsigned char rec[80];
				size_t len = nolost_record(rec, 23, NULL, 53);
				ssize_t w = send(c->fd, rec, len, MSG_NOSIGNAL | MSG_DONTWAIT);
				hello_sent(c, w, len, "finished", t);
				c->fin_sent = true;
			}
			if (!c->connected || c->nsent >= c->nreq)
				continue;
			struct req *r = &c->req[c->nsent];
			/* A TLS client sends its request after the handshake. */
			if ((c->kind == K_TLS || c->kind == K_TLS13) && !c->eof &&
			    (!c->hello_sent || c->hello_got < sizeof NOLOST_HI - 1 ||
			     (c->kind == K_TLS13 && !c->fin_sent))) {
				if (now + 200 < next)
					next = now + 200;
				continue;
			}
			/* A keep-alive client sends its next request only after the
			 * answer to the previous one (or the end of the connection). */
			if (c->nsent && c->req[c->nsent - 1].out == O_NONE) {
				if (now + 200 < next)
					next = now + 200;
			} else if (now >= r->at_us) {
				send_req(c, r, now, t);
			} else if (r->at_us < next) {
				next = r->at_us;
			}
		}
		if (signalled && exit_us < 0 && server_wait(&srv, 0) >= 0)
			exit_us = now_us() - base;
		if (signalled && exit_us >= 0 && all_resolved(cs, n))
			break;
		if (now_us() >= end)
			break;

		struct pollfd p[MAX_CONNS];
		int map[MAX_CONNS], np = 0;
		for (int i = 0; i < n; i++)
			if (cs[i].connected && !cs[i].eof) {
				p[np] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
				map[np++] = i;
			}
		now = now_us() - base;
		long wait = next == LONG_MAX ? 1000 : next - now;
		if (wait > 1000)
			wait = 1000; /* the server's exit is polled every millisecond */
		if (wait < 0)
			wait = 0;
		struct timespec ts = {0, wait * 1000};
		if (ppoll(p, (nfds_t)np, &ts, NULL) > 0)
			for (int j = 0; j < np; j++)
				if (p[j].revents)
					drain(&cs[map[j]], t);
	}

	/* Join the two sides. */
	struct server_log sl;
	int nids = 0;
	for (int i = 0; i < n; i++)
		nids += cs[i].nreq;
	if (exit_us < 0) {
		violation(t, "round %d: server still running %ld ms after SIGINT; stderr: %.120s",
			  round, (now_us() - base) / 1000, server_stderr(&srv));
		server_stop(&srv);
		t->hung = true;
	} else {
		t->exit_ms[t->nexit++ % 512] = exit_us / 1000;
		if (exit_us / 1000 > EXIT_BOUND_MS)
			violation(t, "round %d: server exited %ld ms after SIGINT (bound %d ms)",
				  round, exit_us / 1000, EXIT_BOUND_MS);
		if (!WIFEXITED(srv.status) || WEXITSTATUS(srv.status) != 0)
			violation(t, "round %d: server exit status %#x; stderr: %.120s", round,
				  srv.status, server_stderr(&srv));
	}
	parse_server_log(log_path, &sl, nids, t);
	t->unanswered_logged += sl.unanswered;
	if (!rel_slurp(shim_log, shim_buf, sizeof shim_buf))
		shim_buf[0] = 0;
	t->shim_released += count_lines_with(" shut down (");
	t->shim_cut += count_lines_with(" cut (");
	long sw = first_release_us(&kill_rt);
	if (sw != LONG_MIN && sw >= 0 && sw < 100000)
		t->sweep_us[t->nsweep++ % 512] = sw;
	t->rounds++;
	int before = t->violations;
	for (int i = 0; i < n; i++) {
		struct conn *c = &cs[i];
		t->conns++;
		t->kind[c->kind]++;
		if (c->refused)
			t->refused++;
		if (c->kind == K_PRE && c->eof)
			t->pre_released++;
		if (c->kind == K_TLS && !c->nreq) {
			t->tls_pre++;
			t->tls_released += c->eof;
		}
		if (c->kind == K_TLS13 && !c->nreq) {
			t->tls13_pre++;
			t->tls13_released += c->eof;
		}
		for (int j = 0; j < c->nreq; j++) {
			struct req *r = &c->req[j];
			bool hot = sc->hot && r->sent && r->sent_us >= t->hot_lo_us &&
				   r->sent_us <= t->hot_hi_us;
			if (r->sent) {
				if (r->sent_us < 0)
					t->sent_before++;
				else
					t->sent_after++;
				t->sent_hot += hot;
				t->sent_after_eof += r->after_eof;
			}
			switch (r->out) {
			case O_ANSWERED:
				t->answered++;
				t->hot_answered += hot;
				break;
			case O_UNREAD:
				t->unread++;
				t->hot_unread += hot;
				t->unread_unaware += !r->after_eof;
				break;
			case O_NOT_SENT:
				t->not_sent++;
				break;
			default:
				break;
			}
			if (sl.read[r->id] > 1 || sl.answered[r->id] > 1)
				violation(t,
					  "round %d: request %ld read %d times, answered %d times",
					  round, r->id, sl.read[r->id], sl.answered[r->id]);
			if (sl.read[r->id] && r->out != O_ANSWERED)
				violation(t,
					  "round %d: request %ld (%s, sent at %+ld us after "
					  "SIGINT%s) "
					  "was read "
					  "by the server; the client got %s",
					  round, r->id, kind_name[c->kind], r->sent_us,
					  r->after_eof ? ", after EOF" : "", outcome_name(r->out));
			else if (!sl.read[r->id] && r->out == O_ANSWERED)
				violation(t,
					  "round %d: request %ld answered but never recorded as "
					  "read (the "
					  "oracle is broken)",
					  round, r->id);
			else if (r->out == O_PARTIAL || r->out == O_WRONG || r->out == O_NONE)
				violation(t, "round %d: request %ld (%s, sent at %+ld us): %s",
					  round, r->id, kind_name[c->kind], r->sent_us,
					  outcome_name(r->out));
		}
		if (c->fd >= 0)
			close(c->fd);
	}
	if (t->violations > before && !sc->expect_losses)
		fprintf(stderr, "nolost[%s]: round %d kept for inspection: %s\n", sc->name, round,
			dir);
	else
		rel_rmtree(dir);
	dir[0] = 0;
}

static void summary(const struct scenario *sc, struct totals *t)
{
	int ne = t->nexit < 512 ? t->nexit : 512;
	qsort(t->exit_ms, (size_t)ne, sizeof t->exit_ms[0], cmp_long);
	fprintf(stderr,
		"nolost[%s] seed %llu: %d rounds, %d connections (pre %d, one %d, ka "
		"%d, slow %d, "
		"late %d, of which refused %d; tls %d, of which preconnects %d, released %d; "
		"tls13 %d, of which preconnects %d, released %d); "
		"requests sent %d (before SIGINT %d, "
		"after %d; into a "
		"connection the client had seen end %d): answered in full %d, closed "
		"unread "
		"(retryable) %d (of which sent before the client saw the end %d), "
		"not sent %d; "
		"first release median %ld us after SIGINT; sent in the hot window %d "
		"(answered %d, "
		"closed unread %d); preconnects released %d/%d; shim released %d, "
		"cut %d; server "
		"recorded unanswered %d; server exit after SIGINT median %ld ms, max "
		"%ld ms; "
		"violations %d\n",
		sc->name, seed_once(), t->rounds, t->conns, t->kind[K_PRE], t->kind[K_ONE],
		t->kind[K_KA], t->kind[K_SLOW], t->kind[K_LATE], t->refused, t->kind[K_TLS],
		t->tls_pre, t->tls_released, t->kind[K_TLS13], t->tls13_pre, t->tls13_released,
		t->sent_before + t->sent_after, t->sent_before, t->sent_after, t->sent_after_eof,
		t->answered, t->unread, t->unread_unaware, t->not_sent,
		median(t->sweep_us, t->nsweep), t->sent_hot, t->hot_answered, t->hot_unread,
		t->pre_released, t->kind[K_PRE], t->shim_released, t->shim_cut,
		t->unanswered_logged, ne ? t->exit_ms[ne / 2] : -1L, ne ? t->exit_ms[ne - 1] : -1L,
		t->violations);
	for (int i = 0; i < t->violations && i < MAX_NOTES; i++)
		fprintf(stderr, "nolost[%s]:   %s%s\n", sc->name,
			sc->expect_losses ? "(expected) " : "", t->notes[i]);
}

static void run(const struct scenario *sc, int rounds, struct totals *t)
{
	memset(t, 0, sizeof *t);
	rng_state = seed_once() ^ (unsigned long long)(unsigned char)sc->name[0] << 7;
	if (!rng_state)
		rng_state = 1;
	for (int r = 0; r < rounds && !t->hung; r++)
		run_round(sc, r, t);
	summary(sc, t);
}

static int rounds_from_env(int dflt)
{
	const char *s = getenv("NOLOST_ROUNDS");
	int n = s && *s ? atoi(s) : 0;
	return n > 0 && n <= 100000 ? n : dflt;
}

static void expect_none_lost(const struct scenario *sc, const struct totals *t)
{
	cr_assert_eq(t->violations, 0,
		     "%s: %d violation(s) of \"answered in full, or closed unread\"; "
		     "first: %s",
		     sc->name, t->violations, t->notes[0]);
	/* The rounds did what they were meant to: requests on both sides of
	 * the race, and preconnects released. */
	cr_assert_gt(t->answered, 0);
	cr_assert_eq(t->pre_released, t->kind[K_PRE], "%s: %d of %d preconnects released", sc->name,
		     t->pre_released, t->kind[K_PRE]);
	cr_assert_eq(t->tls_released, t->tls_pre, "%s: %d of %d TLS-shaped preconnects released",
		     sc->name, t->tls_released, t->tls_pre);
	cr_assert_eq(t->tls13_released, t->tls13_pre,
		     "%s: %d of %d ticketless-TLS-1.3-shaped preconnects released", sc->name,
		     t->tls13_released, t->tls13_pre);
}

/* The strict setting (the default before issue 13), hyper 0.14's shutdown;
 * even rounds keep accepting for 20 ms after SIGINT, so connections
 * accepted while draining race the sweep their accept kicks off. */
Test(nolost, unused_policy_requests_around_the_sweep)
{
	static const struct scenario sc = {
		.name = "unused",
		.rounds = 40,
		.n = {[K_PRE] = 4, [K_ONE] = 20, [K_KA] = 6, [K_SLOW] = 2, [K_LATE] = 8},
		.win_lo_us = -20000,
		.win_hi_us = 50000,
		.hot = true,
		.late_hi_us = 20000,
		.late_send_hi_us = 400,
		.ka_first_lo_us = -45000,
		.slow_ms = 30,
		.linger_ms = 20,
		.env = {"GRACESHIM_POLICY=unused", NULL},
	};
	struct totals t;
	run(&sc, rounds_from_env(sc.rounds), &t);
	expect_none_lost(&sc, &t);
	cr_assert_gt(t.unread, 0,
		     "no request met a released connection: the race was not exercised");
}

/* Policy idle: the server waits for keep-alive connections idle between
 * requests (--wait-idle); the shim releases them once quiet for 30 ms, while
 * their second request is on its way. */
Test(nolost, idle_policy_keepalive_requests_around_the_release)
{
	static const struct scenario sc = {
		.name = "idle",
		.rounds = 8,
		.n = {[K_PRE] = 3, [K_ONE] = 8, [K_KA] = 16, [K_SLOW] = 2, [K_LATE] = 4},
		.win_lo_us = -20000,
		.win_hi_us = 50000,
		.hot = true,
		.late_hi_us = 20000,
		.late_send_hi_us = 400,
		.ka_first_lo_us = -45000,
		.slow_ms = 30,
		.linger_ms = 20,
		.wait_idle = true,
		.env = {"GRACESHIM_POLICY=idle", "GRACESHIM_IDLE_QUIET=30ms", NULL},
	};
	struct totals t;
	run(&sc, sc.rounds, &t);
	expect_none_lost(&sc, &t);
}

/* The default settings exactly (issue 13: policy idle, quiet 1 s): the
 * server waits for keep-alive connections idle between requests and for
 * TLS-shaped preconnects (--wait-idle); every request is sent around
 * SIGINT, and the shim releases the idle ones a second after their last
 * answer.  25 rounds of 44 connections: 1,100 per run. */
Test(nolost, default_settings_tls_and_keepalive_requests_around_the_trigger)
{
	static const struct scenario sc = {
		.name = "default",
		.rounds = 25,
		.n = {[K_PRE] = 3,
		      [K_ONE] = 8,
		      [K_KA] = 10,
		      [K_SLOW] = 2,
		      [K_LATE] = 5,
		      [K_TLS] = 8,
		      [K_TLS13] = 8},
		.win_lo_us = -20000,
		.win_hi_us = 50000,
		.hot = true,
		.late_hi_us = 20000,
		.late_send_hi_us = 400,
		.ka_first_lo_us = -45000,
		.slow_ms = 30,
		.linger_ms = 20,
		.wait_idle = true,
	};
	struct totals t;
	run(&sc, rounds_from_env(sc.rounds), &t);
	expect_none_lost(&sc, &t);
	cr_assert_gt(t.tls_pre, 0);
	cr_assert_gt(t.tls13_pre, 0);
}

/* The default policy with a quiet time of 30 ms, so that the release of
 * keep-alive and TLS-shaped connections falls inside the window where
 * their requests are sent: the race itself, on 1,056 connections.  A
 * request read after the release must be answered (its writes pass); an
 * EOF read first must leave the request unread. */
Test(nolost, default_policy_requests_racing_the_idle_release)
{
	static const struct scenario sc = {
		.name = "default, quiet 30ms",
		.rounds = 24,
		.n = {[K_PRE] = 3,
		      [K_ONE] = 6,
		      [K_KA] = 10,
		      [K_SLOW] = 2,
		      [K_LATE] = 5,
		      [K_TLS] = 9,
		      [K_TLS13] = 9},
		.win_lo_us = -20000,
		.win_hi_us = 50000,
		.hot = true,
		.late_hi_us = 20000,
		.late_send_hi_us = 400,
		.ka_first_lo_us = -45000,
		.slow_ms = 30,
		.linger_ms = 20,
		.wait_idle = true,
		.env = {"GRACESHIM_IDLE_QUIET=30ms", NULL},
	};
	struct totals t;
	run(&sc, rounds_from_env(sc.rounds), &t);
	expect_none_lost(&sc, &t);
	cr_assert_gt(t.unread + t.answered, 0);
}

/* A grace of 15 ms: connections accepted while draining are released 15 ms
 * after their accept; their requests are sent 0 to 30 ms after connecting. */
Test(nolost, grace_requests_around_the_deadline)
{
	static const struct scenario sc = {
		.name = "grace",
		.rounds = 8,
		.n = {[K_PRE] = 3, [K_ONE] = 8, [K_KA] = 4, [K_SLOW] = 2, [K_LATE] = 16},
		.win_lo_us = -20000,
		.win_hi_us = 50000,
		.hot = true,
		.late_hi_us = 25000,
		.late_send_hi_us = 30000,
		.ka_first_lo_us = -45000,
		.slow_ms = 30,
		.linger_ms = 30,
		.env = {"GRACESHIM_GRACE=15ms", NULL},
	};
	struct totals t;
	run(&sc, sc.rounds, &t);
	expect_none_lost(&sc, &t);
}

/* The oracle can fail: a drain timeout of 10 ms cuts connections whose
 * request the server is still processing (2 s), which is what the setting
 * is for.  Every such request must be reported as read and left
 * unanswered, on both sides.  SIGINT waits until the server has read the
 * slow requests and answered the others (.settle), however slow the
 * machine: the count below is then exact. */
Test(nolost, oracle_reports_requests_cut_by_the_drain_timeout)
{
	static const struct scenario sc = {
		.name = "drain-timeout (must report losses)",
		.rounds = 3,
		.n = {[K_PRE] = 2, [K_ONE] = 4, [K_SLOW] = 4},
		.win_lo_us = -20000,
		.win_hi_us = -10000,
		.expect_losses = true,
		.settle = true,
		.ka_first_lo_us = -45000,
		.slow_ms = 2000,
		.env = {"GRACESHIM_DRAIN_TIMEOUT=10ms", NULL},
	};
	struct totals t;
	run(&sc, sc.rounds, &t);
	int slow = sc.rounds * sc.n[K_SLOW];
	/* (a connection the server has not closed yet 10 ms after SIGINT, on a
	 * loaded machine, is cut too, harmlessly: at least the slow ones) */
	cr_assert_geq(t.shim_cut, slow, "the drain timeout cut %d connection(s), expected %d",
		      t.shim_cut, slow);
	cr_assert_eq(t.unanswered_logged, slow,
		     "the server recorded %d unanswered request(s), expected %d",
		     t.unanswered_logged, slow);
	/* each cut request is seen from the server's side and the client's */
	cr_assert_geq(t.violations, 2 * slow,
		      "the oracle reported %d violation(s) for %d cut requests", t.violations,
		      slow);
}
