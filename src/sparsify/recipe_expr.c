/*
 * The eval() grammar: a small arithmetic language with Python's precedence
 * and number semantics, and nothing else. SparseML evaluates these with a
 * restricted Python AST walker; here there is no way to reach anything but
 * numbers and recipe variables.
 *
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '//' | '%') unary)*
 *   unary   := ('-' | '+') unary | power
 *   power   := primary ('**' unary)?          (right-assoc; -2**2 == -4)
 *   primary := NUMBER | NAME | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'
 *   functions: abs float int min max round
 *
 * Python semantics kept: int op int stays int for + - * // % and ** with a
 * non-negative exponent; / always gives a float; // and % floor (the sign of
 * % follows the divisor); round() rounds half to even and gives an int,
 * round(x, n) a float; int() truncates toward zero. Unary minus works
 * (upstream's does not).
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct xparser {
    const char *text;
    size_t pos;
    rexpr_lookup_fn lookup;
    void *ctx;
    const char *source;
    int line, column;
    int depth;
    ics_error *err;
} xparser;

#define MAX_INT_EXACT 9007199254740992.0 /* 2^53: beyond this a double is not an exact int */

static ics_status xfail(xparser *p, size_t at, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    /* long expressions are cut: the column already points at the spot */
    size_t len = strlen(p->text);
    return RECIPE_FAIL(p->err, p->source, p->line, p->column + (int)at, "eval(%.80s%s): %s",
                       p->text, len > 80 ? "..." : "", msg);
}

/* Spaces, tabs and newlines (a folded YAML scalar) between tokens. */
static void skip_space(xparser *p)
{
    while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' || p->text[p->pos] == '\n')
        p->pos++;
}

/* A number with its Python kind. */
static rnum mk(double v, int is_int)
{
    rnum r = {v, is_int};
    return r;
}

int rexpr_parse_number(const char *text, rnum *out)
{
    /* YAML / Python numerals: optional sign, digits with an optional point
     * and exponent. No hex, no inf/nan, no underscores. */
    const char *s = text;
    if (*s == '+' || *s == '-') s++;
    int digits = 0, point = 0, exponent = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p) || *p == '.') {
        if (*p == '.') {
            if (point) return 0;
            point = 1;
        } else {
            digits++;
        }
        p++;
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        exponent = 1;
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p) return 0;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno == ERANGE && fabs(v) > 1.0) return 0;
    out->v = v;
    out->is_int = !point && !exponent && fabs(v) <= MAX_INT_EXACT;
    return 1;
}

/* term ((+ | -) term)*, left-associative */
static ics_status parse_expr(xparser *p, rnum *out);
/* (- | +)* power */
static ics_status parse_unary(xparser *p, rnum *out);

/* Python // on floats: floor of the true quotient. */
static double py_floor_div(double a, double b)
{
    return floor(a / b);
}

/* Python %: the result has the sign of the divisor. */
static double py_mod(double a, double b)
{
    double r = fmod(a, b);
    if (r != 0.0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

/* Python's round(): half to even. */
static double round_half_even(double x)
{
    int saved = fegetround();
    fesetround(FE_TONEAREST);
    double r = nearbyint(x);
    fesetround(saved);
    return r;
}

/* The six allowed functions with Python's results and kinds. */
static ics_status call_function(xparser *p, const char *name, size_t at, rnum *args, int nargs,
                                rnum *out)
{
    if (strcmp(name, "abs") == 0) {
        if (nargs != 1) return xfail(p, at, "abs() takes one argument%s", "");
        *out = mk(fabs(args[0].v), args[0].is_int);
    } else if (strcmp(name, "float") == 0) {
        if (nargs != 1) return xfail(p, at, "float() takes one argument%s", "");
        *out = mk(args[0].v, 0);
    } else if (strcmp(name, "int") == 0) {
        if (nargs != 1) return xfail(p, at, "int() takes one argument%s", "");
        *out = mk(trunc(args[0].v), 1);
    } else if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0) {
        int is_max = name[1] == 'a';
        if (nargs < 2) return xfail(p, at, "%s() needs at least two numbers", name);
        *out = args[0];
        for (int i = 1; i < nargs; i++)
            if (is_max ? args[i].v > out->v : args[i].v < out->v) *out = args[i];
    } else if (strcmp(name, "round") == 0) {
        if (nargs == 1) {
            *out = mk(round_half_even(args[0].v), 1);
        } else if (nargs == 2) {
            if (!args[1].is_int) return xfail(p, at, "round() digits must be an int%s", "");
            if (args[0].is_int && args[1].v >= 0) {
                *out = args[0]; /* round(int, n >= 0) is the int itself */
            } else if (args[1].v >= 0 && args[1].v <= 40) {
                /* Python rounds the exact binary value half to even in
                 * decimal (round(2.675, 2) == 2.67, since 2.675 is really
                 * 2.67499999...); printf's %.*f does the same */
                char text[512];
                snprintf(text, sizeof text, "%.*f", (int)args[1].v, args[0].v);
                *out = mk(strtod(text, NULL), 0);
            } else {
                double scale = pow(10.0, args[1].v);
                *out = mk(round_half_even(args[0].v * scale) / scale, args[0].is_int);
            }
        } else {
            return xfail(p, at, "round() takes one or two arguments%s", "");
        }
    } else {
        return xfail(p, at, "unknown function '%s' (allowed: abs float int min max round)", name);
    }
    return ICS_OK;
}

/* NUMBER | NAME | FUNC(args) | ( expr ) */
static ics_status parse_primary(xparser *p, rnum *out)
{
    skip_space(p);
    size_t at = p->pos;
    char c = p->text[p->pos];
    if (c == '(') {
        p->pos++;
        ics_status st = parse_expr(p, out);
        if (st != ICS_OK) return st;
        skip_space(p);
        if (p->text[p->pos] != ')') return xfail(p, p->pos, "expected ')'%s", "");
        p->pos++;
        return ICS_OK;
    }
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)p->text[p->pos + 1]))) {
        char buf[64];
        size_t n = 0;
        while (n + 1 < sizeof buf &&
               (isdigit((unsigned char)p->text[p->pos]) || p->text[p->pos] == '.' ||
                ((p->text[p->pos] == 'e' || p->text[p->pos] == 'E') && n > 0) ||
                ((p->text[p->pos] == '+' || p->text[p->pos] == '-') && n > 0 &&
                 (buf[n - 1] == 'e' || buf[n - 1] == 'E')))) {
            buf[n++] = p->text[p->pos++];
        }
        buf[n] = '\0';
        if (!rexpr_parse_number(buf, out)) return xfail(p, at, "bad number '%s'", buf);
        return ICS_OK;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        char name[128];
        size_t n = 0;
        while (isalnum((unsigned char)p->text[p->pos]) || p->text[p->pos] == '_') {
            if (n + 1 >= sizeof name) return xfail(p, at, "name too long%s", "");
            name[n++] = p->text[p->pos++];
        }
        name[n] = '\0';
        skip_space(p);
        if (p->text[p->pos] == '(') {
            p->pos++;
            rnum args[16];
            int nargs = 0;
            skip_space(p);
            if (p->text[p->pos] != ')') {
                for (;;) {
                    if (nargs == 16) return xfail(p, p->pos, "too many arguments%s", "");
                    /* NAME = ...: a keyword argument (Python allows round(x, ndigits=1)) */
                    size_t look = p->pos;
                    while (isalnum((unsigned char)p->text[look]) || p->text[look] == '_')
                        look++;
                    while (p->text[look] == ' ' || p->text[look] == '\t')
                        look++;
                    if (look > p->pos && p->text[look] == '=' && p->text[look + 1] != '=')
                        return xfail(p, p->pos, "keyword arguments are not supported%s", "");
                    ics_status st = parse_expr(p, &args[nargs++]);
                    if (st != ICS_OK) return st;
                    skip_space(p);
                    if (p->text[p->pos] == ',') {
                        p->pos++;
                        continue;
                    }
                    break;
                }
            }
            if (p->text[p->pos] != ')') return xfail(p, p->pos, "expected ')' or ','%s", "");
            p->pos++;
            return call_function(p, name, at, args, nargs, out);
        }
        if (!p->lookup) return xfail(p, at, "unknown variable '%s'", name);
        return p->lookup(p->ctx, name, p->line, p->column + (int)at, out, p->err);
    }
    if (c == '\0') return xfail(p, at, "unexpected end of expression%s", "");
    char tok[2] = {c, '\0'};
    return xfail(p, at,
                 "unexpected '%s' (only numbers, variables, + - * / // %% ** ( ) and "
                 "abs float int min max round)",
                 tok);
}

/* a ** b with Python's errors (0 ** negative, negative ** fraction). */
static ics_status power_op(xparser *p, size_t at, rnum a, rnum b, rnum *out)
{
    if (a.v == 0.0 && b.v < 0) return xfail(p, at, "zero to a negative power%s", "");
    if (a.v < 0 && !b.is_int && b.v != floor(b.v))
        return xfail(p, at, "negative number to a fractional power%s", "");
    double v = pow(a.v, b.v);
    int is_int = a.is_int && b.is_int && b.v >= 0 && fabs(v) <= MAX_INT_EXACT;
    if (!isfinite(v)) return xfail(p, at, "overflow in **%s", "");
    *out = mk(v, is_int);
    return ICS_OK;
}

/* primary [** unary]: right-associative, binds tighter than unary minus
 * on its left and looser on its right (2 ** -1). */
static ics_status parse_power(xparser *p, rnum *out)
{
    ics_status st = parse_primary(p, out);
    if (st != ICS_OK) return st;
    skip_space(p);
    if (p->text[p->pos] == '*' && p->text[p->pos + 1] == '*') {
        size_t at = p->pos;
        p->pos += 2;
        rnum rhs;
        /* the exponent binds a unary minus: 2 ** -1 == 0.5 */
        st = parse_unary(p, &rhs);
        if (st != ICS_OK) return st;
        return power_op(p, at, *out, rhs, out);
    }
    return ICS_OK;
}

static ics_status parse_unary(xparser *p, rnum *out)
{
    skip_space(p);
    char c = p->text[p->pos];
    if (c == '-' || c == '+') {
        if (++p->depth > 200) return xfail(p, p->pos, "expression nested too deeply%s", "");
        p->pos++;
        ics_status st = parse_unary(p, out);
        p->depth--;
        if (st != ICS_OK) return st;
        if (c == '-') out->v = -out->v;
        return ICS_OK;
    }
    return parse_power(p, out);
}

/* unary ((* | / | // | %) unary)*, left-associative */
static ics_status parse_term(xparser *p, rnum *out)
{
    ics_status st = parse_unary(p, out);
    if (st != ICS_OK) return st;
    for (;;) {
        skip_space(p);
        const char *s = p->text + p->pos;
        int op;
        if (s[0] == '/' && s[1] == '/')
            op = 'f';
        else if (s[0] == '*' && s[1] != '*')
            op = '*';
        else if (s[0] == '/' || s[0] == '%')
            op = s[0];
        else
            return ICS_OK;
        size_t at = p->pos;
        p->pos += op == 'f' ? 2 : 1;
        rnum b;
        st = parse_unary(p, &b);
        if (st != ICS_OK) return st;
        rnum a = *out;
        int both_int = a.is_int && b.is_int;
        if (op != '*' && b.v == 0.0) return xfail(p, at, "division by zero%s", "");
        switch (op) {
        case '*':
            *out = mk(a.v * b.v, both_int);
            break;
        case '/':
            *out = mk(a.v / b.v, 0);
            break;
        case 'f':
            *out = mk(py_floor_div(a.v, b.v), both_int);
            break;
        default:
            *out = mk(py_mod(a.v, b.v), both_int);
            break;
        }
    }
}

static ics_status parse_expr(xparser *p, rnum *out)
{
    if (++p->depth > 200) return xfail(p, p->pos, "expression nested too deeply%s", "");
    ics_status st = parse_term(p, out);
    while (st == ICS_OK) {
        skip_space(p);
        char c = p->text[p->pos];
        if (c != '+' && c != '-') break;
        p->pos++;
        rnum b;
        st = parse_term(p, &b);
        if (st != ICS_OK) break;
        *out = mk(c == '+' ? out->v + b.v : out->v - b.v, out->is_int && b.is_int);
    }
    p->depth--;
    return st;
}

ics_status rexpr_eval(const char *expr, rexpr_lookup_fn lookup, void *ctx, const char *source,
                      int line, int column, rnum *out, ics_error *err)
{
    xparser p = {.text = expr,
                 .lookup = lookup,
                 .ctx = ctx,
                 .source = source,
                 .line = line,
                 .column = column,
                 .err = err};
    skip_space(&p);
    if (!expr[p.pos]) return xfail(&p, 0, "empty expression%s", "");
    ics_status st = parse_expr(&p, out);
    if (st != ICS_OK) return st;
    skip_space(&p);
    if (expr[p.pos]) {
        char tok[2] = {expr[p.pos], '\0'};
        return xfail(&p, p.pos, "unexpected '%s' after the expression", tok);
    }
    if (!isfinite(out->v)) return xfail(&p, 0, "result is not a finite number%s", "");
    return ICS_OK;
}
