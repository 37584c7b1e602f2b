/*
 * SPDX-License-Identifier: MIT
 *
 * Log line formatting without libc's locks (see logfmt.h).  Pure: no
 * system call, no global state, so the unit tests compare it with libc's
 * own snprintf().
 */
#include "logfmt.h"

#include <stdbool.h>
#include <string.h>

/* Output into a bounded buffer; o counts what was written. */
struct out {
	char *buf;
	size_t cap; /* bytes usable, the NUL's place excluded */
	size_t o;
};

static void put(struct out *w, char c)
{
	if (w->o < w->cap)
		w->buf[w->o++] = c;
}

static void put_n(struct out *w, char c, long n)
{
	while (n-- > 0)
		put(w, c);
}

static void put_s(struct out *w, const char *s, size_t n)
{
	while (n--)
		put(w, *s++);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; Howard
 * Hinnant's days_from_civil inverse). */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put_dec(struct out *w, uint64_t v, int digits)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	put_n(w, '0', digits - n);
	while (n)
		put(w, tmp[--n]);
}

size_t logfmt_time(char *buf, size_t len, int64_t sec, long usec, long utc_offset)
{
	if (!len)
		return 0;
	struct out w = {buf, len - 1, 0};
	int64_t local = sec + utc_offset;
	int64_t days = local / 86400, rem = local % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	int64_t y;
	unsigned m, d;
	civil(days, &y, &m, &d);
	if (y < 0) {
		put(&w, '-');
		y = -y;
	}
	put_dec(&w, (uint64_t)y, 4);
	put(&w, '-');
	put_dec(&w, m, 2);
	put(&w, '-');
	put_dec(&w, d, 2);
	put(&w, 'T');
	put_dec(&w, (uint64_t)(rem / 3600), 2);
	put(&w, ':');
	put_dec(&w, (uint64_t)(rem % 3600 / 60), 2);
	put(&w, ':');
	put_dec(&w, (uint64_t)(rem % 60), 2);
	put(&w, '.');
	put_dec(&w, (uint64_t)(usec < 0 ? 0 : usec % 1000000), 6);
	long off = utc_offset;
	put(&w, off < 0 ? '-' : '+');
	if (off < 0)
		off = -off;
	put_dec(&w, (uint64_t)(off / 3600), 2);
	put(&w, ':');
	put_dec(&w, (uint64_t)(off % 3600 / 60), 2);
	buf[w.o] = 0;
	return w.o;
}

struct spec {
	bool left, zero, plus, space;
	int width;     /* 0: none */
	int precision; /* -1: none */
};

/* A number's digits (and sign or prefix) padded as the spec says. */
static void put_num(struct out *w, const struct spec *s, const char *prefix, const char *digits,
		    size_t nd)
{
	size_t np = strlen(prefix);
	long zeros = s->precision >= 0 && (size_t)s->precision > nd ? s->precision - (long)nd : 0;
	long pad = s->width - (long)(np + nd) - zeros;
	if (pad < 0)
		pad = 0;
	bool zero_pad = s->zero && !s->left && s->precision < 0;
	if (!s->left && !zero_pad)
		put_n(w, ' ', pad);
	put_s(w, prefix, np);
	if (zero_pad)
		put_n(w, '0', pad);
	put_n(w, '0', zeros);
	put_s(w, digits, nd);
	if (s->left)
		put_n(w, ' ', pad);
}

static size_t to_base(char *tmp, uint64_t v, unsigned base, bool upper)
{
	const char *dig = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char rev[24];
	size_t n = 0;
	do
		rev[n++] = dig[v % base];
	while ((v /= base));
	for (size_t i = 0; i < n; i++)
		tmp[i] = rev[n - 1 - i];
	return n;
}

static void put_int(struct out *w, const struct spec *s, bool neg, uint64_t mag, unsigned base,
		    bool upper)
{
	char digits[24];
	size_t nd = to_base(digits, mag, base, upper);
	if (s->precision == 0 && mag == 0)
		nd = 0; /* "%.0d" of 0 prints no digit */
	const char *prefix = neg ? "-" : s->plus ? "+" : s->space ? " " : "";
	put_num(w, s, prefix, digits, nd);
}

static void put_double(struct out *w, const struct spec *s, double v)
{
	int prec = s->precision < 0 ? 6 : s->precision > 9 ? 9 : s->precision;
	bool neg = v < 0 || (v == 0 && 1 / v < 0);
	if (neg)
		v = -v;
	const char *prefix = neg ? "-" : s->plus ? "+" : s->space ? " " : "";
	struct spec t = *s;
	t.precision = -1;
	if (__builtin_isnan(v) || __builtin_isinf(v)) {
		t.zero = false;
		put_num(w, &t, prefix, __builtin_isnan(v) ? "nan" : "inf", 3);
		return;
	}
	if (v >= 1.8e19) { /* beyond 64 bits: not a value the shim logs */
		t.zero = false;
		put_num(w, &t, prefix, "(big)", 5);
		return;
	}
	uint64_t scale = 1;
	for (int i = 0; i < prec; i++)
		scale *= 10;
	uint64_t ip = (uint64_t)v;
	double frac = (v - (double)ip) * (double)scale + 0.5;
	uint64_t fp = (uint64_t)frac;
	if (fp >= scale) {
		ip++;
		fp -= scale;
	}
	char digits[48];
	size_t nd = to_base(digits, ip, 10, false);
	if (prec > 0) {
		digits[nd++] = '.';
		char f[24];
		size_t nf = to_base(f, fp, 10, false);
		for (size_t i = nf; i < (size_t)prec; i++)
			digits[nd++] = '0';
		memcpy(digits + nd, f, nf);
		nd += nf;
	}
	put_num(w, &t, prefix, digits, nd);
}

size_t logfmt_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	if (!len)
		return 0;
	struct out w = {buf, len - 1, 0};
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put(&w, *p);
			continue;
		}
		const char *start = p++;
		struct spec s = {false, false, false, false, 0, -1};
		for (;; p++) {
			if (*p == '-')
				s.left = true;
			else if (*p == '0')
				s.zero = true;
			else if (*p == '+')
				s.plus = true;
			else if (*p == ' ')
				s.space = true;
			else if (*p != '#')
				break;
		}
		if (*p == '*') {
			s.width = va_arg(ap, int);
			if (s.width < 0) {
				s.left = true;
				s.width = -s.width;
			}
			p++;
		} else {
			while (*p >= '0' && *p <= '9')
				s.width = s.width * 10 + (*p++ - '0');
		}
		if (*p == '.') {
			p++;
			s.precision = 0;
			if (*p == '*') {
				s.precision = va_arg(ap, int);
				if (s.precision < 0)
					s.precision = -1;
				p++;
			} else {
				while (*p >= '0' && *p <= '9')
					s.precision = s.precision * 10 + (*p++ - '0');
			}
		}
		int lng = 0; /* -2 hh, -1 h, 1 l, 2 ll, 3 size_t/intmax_t/ptrdiff_t */
		if (*p == 'h') {
			lng = -1;
			if (*++p == 'h') {
				lng = -2;
				p++;
			}
		} else if (*p == 'l') {
			lng = 1;
			if (*++p == 'l') {
				lng = 2;
				p++;
			}
		} else if (*p == 'z' || *p == 'j' || *p == 't') {
			lng = 3;
			p++;
		}
		switch (*p) {
		case 'd':
		case 'i': {
			long long v = lng >= 2   ? va_arg(ap, long long)
				      : lng == 1 ? va_arg(ap, long)
						 : va_arg(ap, int);
			if (lng == -1)
				v = (short)v;
			else if (lng == -2)
				v = (signed char)v;
			put_int(&w, &s, v < 0,
				v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v, 10,
				false);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			unsigned long long v = lng >= 2   ? va_arg(ap, unsigned long long)
					       : lng == 1 ? va_arg(ap, unsigned long)
							  : va_arg(ap, unsigned int);
			if (lng == -1)
				v = (unsigned short)v;
			else if (lng == -2)
				v = (unsigned char)v;
			s.plus = s.space = false;
			put_int(&w, &s, false, v, *p == 'u' ? 10 : *p == 'o' ? 8 : 16, *p == 'X');
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			struct spec t = s;
			t.precision = -1;
			t.zero = false;
			put_num(&w, &t, "", &c, 1);
			break;
		}
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			size_t n = 0;
			while (str[n] && (s.precision < 0 || n < (size_t)s.precision))
				n++;
			struct spec t = s;
			t.precision = -1;
			t.zero = false;
			put_num(&w, &t, "", str, n);
			break;
		}
		case 'p': {
			void *v = va_arg(ap, void *);
			struct spec t = s;
			t.zero = false;
			if (!v) {
				t.precision = -1;
				put_num(&w, &t, "", "(nil)", 5);
			} else {
				char digits[24];
				size_t nd = to_base(digits, (uintptr_t)v, 16, false);
				put_num(&w, &t, "0x", digits, nd);
			}
			break;
		}
		case 'f':
		case 'F':
			put_double(&w, &s, va_arg(ap, double));
			break;
		case '%':
			put(&w, '%');
			break;
		default:
			/* Not ours: copied as it stands. */
			if (!*p)
				p--;
			put_s(&w, start, (size_t)(p - start) + 1);
			break;
		}
	}
	buf[w.o] = 0;
	return w.o;
}

size_t logfmt_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = logfmt_vformat(buf, len, fmt, ap);
	va_end(ap);
	return n;
}
