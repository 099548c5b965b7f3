/* The data-only pickle virtual machine: see pickle_reader.h. Opcode
 * meanings follow CPython's Lib/pickletools.py, the annotated reference
 * of the format. */
#include "ics_build_config.h"
#include "io/pickle_reader.h"
#include "io/pickle_builtins.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

const ics_pickle_limits ics_pickle_default_limits = {
    .max_stack = (size_t)1 << 24, .max_marks = (size_t)1 << 16, .max_memo = (size_t)1 << 24};

enum {
    OP_MARK = '(',
    OP_STOP = '.',
    OP_POP = '0',
    OP_POP_MARK = '1',
    OP_DUP = '2',
    OP_BININT = 'J',
    OP_BININT1 = 'K',
    OP_BININT2 = 'M',
    OP_NONE = 'N',
    OP_BINPERSID = 'Q',
    OP_REDUCE = 'R',
    OP_BINSTRING = 'T',
    OP_SHORT_BINSTRING = 'U',
    OP_BINUNICODE = 'X',
    OP_APPEND = 'a',
    OP_BUILD = 'b',
    OP_GLOBAL = 'c',
    OP_DICT = 'd',
    OP_EMPTY_DICT = '}',
    OP_APPENDS = 'e',
    OP_BINGET = 'h',
    OP_LONG_BINGET = 'j',
    OP_LIST = 'l',
    OP_EMPTY_LIST = ']',
    OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r',
    OP_SETITEM = 's',
    OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u',
    OP_BINFLOAT = 'G',
    OP_BINBYTES = 'B',
    OP_SHORT_BINBYTES = 'C',
    OP_PROTO = 0x80,
    OP_NEWOBJ = 0x81,
    OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86,
    OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b,
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e,
    OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90,
    OP_FROZENSET = 0x91,
    OP_NEWOBJ_EX = 0x92,
    OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95,
    OP_BYTEARRAY8 = 0x96
};

typedef struct vm {
    const uint8_t *data;
    size_t size, pos, op_pos; /* op_pos: offset of the opcode being run */
    const char *label;
    ics_pv_arena *arena;
    const ics_pickle_hooks *hooks;
    const ics_pickle_limits *limits;
    ics_pv **stack;
    size_t depth, stack_cap;
    size_t *marks;
    size_t mark_count, mark_cap;
    ics_pv **memo;
    size_t memo_len;   /* slots allocated */
    size_t memo_count; /* slots set: the index MEMOIZE uses next */
    ics_error *err;
} vm;

/* Every error names the stream and the offset of the opcode. */
#define VM_FAIL(m, status, fmt, ...)                                                               \
    ICS_FAIL((m)->err, (status), "%s: pickle: " fmt " (opcode at offset %zu)", (m)->label,         \
             __VA_ARGS__, (m)->op_pos)

static ics_status truncated(vm *m)
{
    return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "truncated stream, no STOP");
}

/* Takes n bytes of operand, or fails as truncated. */
static ics_status take(vm *m, size_t n, const uint8_t **p)
{
    if (n > m->size - m->pos) return truncated(m);
    *p = m->data + m->pos;
    m->pos += n;
    return ICS_OK;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The status of a failed callee (which set m->err), never ICS_OK. */
static ics_status failed(vm *m)
{
    return m->err->status != ICS_OK ? m->err->status : ICS_ERR_RUNTIME;
}

static ics_status push(vm *m, ics_pv *v)
{
    if (!v) return failed(m);
    if (m->depth >= m->limits->max_stack)
        return VM_FAIL(m, ICS_ERR_FORMAT, "stack deeper than %zu values (limit)",
                       m->limits->max_stack);
    if (m->depth == m->stack_cap) {
        size_t cap = m->stack_cap ? m->stack_cap * 2 : 64;
        ics_pv **s = ics_realloc(m->stack, cap * sizeof *s, "pickle stack", m->err);
        if (!s) return ICS_ERR_NOMEM;
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->depth++] = v;
    return ICS_OK;
}

/* The lowest stack position an ordinary pop may reach: the top MARK. */
static size_t fence(const vm *m)
{
    return m->mark_count ? m->marks[m->mark_count - 1] : 0;
}

static ics_status pop(vm *m, ics_pv **out)
{
    if (m->depth <= fence(m)) return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "stack underflow");
    *out = m->stack[--m->depth];
    return ICS_OK;
}

static ics_status top(vm *m, ics_pv **out)
{
    if (m->depth <= fence(m)) return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "stack underflow");
    *out = m->stack[m->depth - 1];
    return ICS_OK;
}

/* Pops the top MARK: the items above it are stack[*start .. depth). */
static ics_status pop_mark(vm *m, size_t *start)
{
    if (m->mark_count == 0) return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "no MARK on the stack");
    *start = m->marks[--m->mark_count];
    return ICS_OK;
}

static ics_status memo_put(vm *m, uint64_t index)
{
    ics_pv *v;
    ics_status st = top(m, &v);
    if (st != ICS_OK) return st;
    if (index >= m->limits->max_memo)
        return VM_FAIL(m, ICS_ERR_FORMAT, "memo index %llu out of range (limit %zu)",
                       (unsigned long long)index, m->limits->max_memo);
    if (index >= m->memo_len) {
        size_t len = (size_t)index + 1, cap = m->memo_len ? m->memo_len : 64;
        while (cap < len)
            cap *= 2;
        ics_pv **memo = ics_realloc(m->memo, cap * sizeof *memo, "pickle memo", m->err);
        if (!memo) return ICS_ERR_NOMEM;
        memset(memo + m->memo_len, 0, (cap - m->memo_len) * sizeof *memo);
        m->memo = memo;
        m->memo_len = cap;
    }
    if (!m->memo[index]) m->memo_count++;
    m->memo[index] = v;
    return ICS_OK;
}

static ics_status memo_get(vm *m, uint64_t index)
{
    if (index >= m->memo_len || !m->memo[index])
        return VM_FAIL(m, ICS_ERR_FORMAT, "memo index %llu out of range (never stored)",
                       (unsigned long long)index);
    return push(m, m->memo[index]);
}

/* A tuple or list of the items above `start`, which are popped. */
static ics_status collect(vm *m, size_t start, ics_pv_kind kind)
{
    ics_pv *seq = ics_pv_new(m->arena, kind, m->err);
    if (!seq) return ICS_ERR_NOMEM;
    for (size_t i = start; i < m->depth; i++) {
        ics_status st = ics_pv_seq_append(m->arena, seq, m->stack[i], m->err);
        if (st != ICS_OK) return st;
    }
    m->depth = start;
    return push(m, seq);
}

static ics_status tuple_n(vm *m, size_t n)
{
    if (m->depth < fence(m) + n) return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "stack underflow");
    return collect(m, m->depth - n, ICS_PV_TUPLE);
}

/* Adds stack[start..depth) to the list below them (APPENDS, ADDITEMS). */
static ics_status extend(vm *m, size_t start)
{
    if (start == 0 || start <= (m->mark_count ? m->marks[m->mark_count - 1] : 0))
        return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "stack underflow");
    ics_pv *list = m->stack[start - 1];
    if (list->kind != ICS_PV_LIST)
        return VM_FAIL(m, ICS_ERR_FORMAT, "cannot append to a %s", ics_pv_kind_name(list->kind));
    for (size_t i = start; i < m->depth; i++) {
        ics_status st = ics_pv_seq_append(m->arena, list, m->stack[i], m->err);
        if (st != ICS_OK) return st;
    }
    m->depth = start;
    return ICS_OK;
}

/* Sets pairs stack[start..depth) into the dict below them (SETITEM(S)). */
static ics_status set_items(vm *m, size_t start)
{
    if (start == 0 || start <= (m->mark_count ? m->marks[m->mark_count - 1] : 0))
        return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "stack underflow");
    if ((m->depth - start) % 2 != 0)
        return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "odd number of items for a dict");
    ics_pv *dict = m->stack[start - 1];
    if (dict->kind != ICS_PV_DICT)
        return VM_FAIL(m, ICS_ERR_FORMAT, "cannot set an item of a %s",
                       ics_pv_kind_name(dict->kind));
    for (size_t i = start; i < m->depth; i += 2) {
        ics_status st = ics_pv_dict_set(m->arena, dict, m->stack[i], m->stack[i + 1], m->err);
        if (st != ICS_OK) return st;
    }
    m->depth = start;
    return ICS_OK;
}

static ics_status push_text(vm *m, ics_pv_kind kind, size_t len_bytes)
{
    const uint8_t *p = NULL;
    ics_status st = take(m, len_bytes, &p);
    if (st != ICS_OK) return st;
    uint64_t len = rd_le(p, (int)len_bytes);
    if (len > m->size - m->pos) return truncated(m);
    st = take(m, (size_t)len, &p);
    if (st != ICS_OK) return st;
    return push(m, kind == ICS_PV_STRING
                       ? ics_pv_new_string(m->arena, (const char *)p, (size_t)len, m->err)
                       : ics_pv_new_bytes(m->arena, p, (size_t)len, m->err));
}

/* LONG1 / LONG4: little-endian two's complement of any length; we keep
 * what fits in int64 (leading sign-extension bytes are allowed). */
static ics_status push_long(vm *m, size_t len_bytes)
{
    const uint8_t *p = NULL;
    ics_status st = take(m, len_bytes, &p);
    if (st != ICS_OK) return st;
    uint64_t n = rd_le(p, (int)len_bytes);
    if (n > m->size - m->pos) return truncated(m);
    st = take(m, (size_t)n, &p);
    if (st != ICS_OK) return st;
    if (n == 0) return push(m, ics_pv_new_int(m->arena, 0, m->err));
    uint8_t sign = (p[n - 1] & 0x80) ? 0xFF : 0x00;
    size_t used = (size_t)n;
    while (used > 8 && p[used - 1] == sign)
        used--;
    if (used > 8 || (used == 8 && ((p[7] & 0x80) ? 0xFF : 0x00) != sign))
        return VM_FAIL(m, ICS_ERR_FORMAT, "integer of %llu bytes does not fit in int64",
                       (unsigned long long)n);
    uint64_t v = sign ? ~(uint64_t)0 : 0;
    for (size_t i = 0; i < used && i < 8; i++) {
        v &= ~((uint64_t)0xFF << (8 * i));
        v |= (uint64_t)p[i] << (8 * i);
    }
    int64_t sv;
    memcpy(&sv, &v, sizeof sv);
    return push(m, ics_pv_new_int(m->arena, sv, m->err));
}

/* GLOBAL's operands: two newline-terminated lines, module then name. */
static ics_status read_line(vm *m, const char **s, size_t *len)
{
    const uint8_t *start = m->data + m->pos;
    const uint8_t *nl = memchr(start, '\n', m->size - m->pos);
    if (!nl) return truncated(m);
    *s = (const char *)start;
    *len = (size_t)(nl - start);
    m->pos += *len + 1;
    return ICS_OK;
}

static ics_status push_global(vm *m, const char *module, size_t module_len, const char *name,
                              size_t name_len)
{
    /* Protocol 2 pickles written by Python 3 use Python 2 module names. */
    if (module_len == 11 && memcmp(module, "__builtin__", 11) == 0) {
        module = "builtins";
        module_len = 8;
    }
    ics_pv *g = ics_pv_new(m->arena, ICS_PV_GLOBAL, m->err);
    if (!g) return ICS_ERR_NOMEM;
    g->u.global.module = ics_pv_arena_strdup(m->arena, module, module_len, m->err);
    g->u.global.name = ics_pv_arena_strdup(m->arena, name, name_len, m->err);
    if (!g->u.global.module || !g->u.global.name) return ICS_ERR_NOMEM;
    return push(m, g);
}

/* REDUCE / NEWOBJ: callable(*args) for the classes the hooks or the
 * built-ins know; an opaque object for all others. Nothing is executed. */
static ics_status call(vm *m, ics_pv *callable, ics_pv *args, ics_pv *kwargs)
{
    if (callable->kind != ICS_PV_GLOBAL)
        return VM_FAIL(m, ICS_ERR_FORMAT,
                       "cannot call a %s (only classes and functions named "
                       "by GLOBAL)",
                       ics_pv_kind_name(callable->kind));
    if (args->kind != ICS_PV_TUPLE)
        return VM_FAIL(m, ICS_ERR_FORMAT, "arguments of %s.%s are a %s, not a tuple",
                       callable->u.global.module, callable->u.global.name,
                       ics_pv_kind_name(args->kind));
    ics_pv *result = NULL;
    ics_status st = ICS_OK;
    if (m->hooks && m->hooks->call && !kwargs)
        st = m->hooks->call(m->hooks->ctx, m->arena, callable, args, &result, m->err);
    if (st == ICS_OK && !result && !kwargs)
        st = ics_pickle_builtin_call(m->arena, callable, args, &result, m->err);
    if (st != ICS_OK) {
        ics_error_prefix(m->err, "%s: pickle offset %zu: ", m->label, m->op_pos);
        return failed(m);
    }
    if (!result) {
        result = ics_pv_new(m->arena, ICS_PV_OBJECT, m->err);
        if (!result) return ICS_ERR_NOMEM;
        size_t lm = strlen(callable->u.global.module), ln = strlen(callable->u.global.name);
        char *name = ics_pv_arena_strdup(m->arena, NULL, lm + 1 + ln, m->err);
        if (!name) return ICS_ERR_NOMEM;
        memcpy(name, callable->u.global.module, lm);
        name[lm] = '.';
        memcpy(name + lm + 1, callable->u.global.name, ln + 1);
        result->u.object.class_name = name;
        result->u.object.args = args;
        result->u.object.state = kwargs; /* NEWOBJ_EX keyword arguments */
    }
    return push(m, result);
}

/* BUILD: inst.__setstate__(state). Opaque objects keep the state; torch
 * tensors and OrderedDicts accept (and here ignore) theirs, as torch's
 * weights_only unpickler does; anything else is refused. */
static ics_status build(vm *m)
{
    ics_pv *state, *inst;
    ics_status st = pop(m, &state);
    if (st == ICS_OK) st = top(m, &inst);
    if (st != ICS_OK) return st;
    if (inst->kind == ICS_PV_OBJECT) {
        inst->u.object.state = state;
        return ICS_OK;
    }
    if (inst->kind == ICS_PV_TENSOR || inst->kind == ICS_PV_DICT) return ICS_OK;
    return VM_FAIL(m, ICS_ERR_FORMAT, "BUILD on a %s", ics_pv_kind_name(inst->kind));
}

/* Runs one opcode; *stop is set by STOP. */
static ics_status step(vm *m, int *stop)
{
    const uint8_t *p = NULL;
    ics_pv *a, *b, *c;
    size_t start;
    ics_status st;
    m->op_pos = m->pos;
    if (m->pos >= m->size) return truncated(m);
    uint8_t op = m->data[m->pos++];
    switch (op) {
    case OP_PROTO:
        if ((st = take(m, 1, &p)) != ICS_OK) return st;
        if (*p > 5) return VM_FAIL(m, ICS_ERR_FORMAT, "unsupported pickle protocol %u", *p);
        return ICS_OK;
    case OP_FRAME: /* a framing hint for buffered readers: we hold it all */
        return take(m, 8, &p);
    case OP_STOP:
        if ((st = pop(m, &a)) != ICS_OK) return st;
        *stop = 1;
        return push(m, a);
    case OP_MARK:
        if (m->mark_count >= m->limits->max_marks)
            return VM_FAIL(m, ICS_ERR_FORMAT, "more than %zu nested MARKs (limit)",
                           m->limits->max_marks);
        if (m->mark_count == m->mark_cap) {
            size_t cap = m->mark_cap ? m->mark_cap * 2 : 32;
            size_t *marks = ics_realloc(m->marks, cap * sizeof *marks, "pickle marks", m->err);
            if (!marks) return ICS_ERR_NOMEM;
            m->marks = marks;
            m->mark_cap = cap;
        }
        m->marks[m->mark_count++] = m->depth;
        return ICS_OK;
    case OP_POP:
        return pop(m, &a);
    case OP_POP_MARK:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        m->depth = start;
        return ICS_OK;
    case OP_DUP:
        if ((st = top(m, &a)) != ICS_OK) return st;
        return push(m, a);
    case OP_NONE:
        return push(m, ics_pv_new(m->arena, ICS_PV_NONE, m->err));
    case OP_NEWTRUE:
        return push(m, ics_pv_new_bool(m->arena, 1, m->err));
    case OP_NEWFALSE:
        return push(m, ics_pv_new_bool(m->arena, 0, m->err));
    case OP_BININT:
        if ((st = take(m, 4, &p)) != ICS_OK) return st;
        return push(m, ics_pv_new_int(m->arena, (int32_t)(uint32_t)rd_le(p, 4), m->err));
    case OP_BININT1:
        if ((st = take(m, 1, &p)) != ICS_OK) return st;
        return push(m, ics_pv_new_int(m->arena, p[0], m->err));
    case OP_BININT2:
        if ((st = take(m, 2, &p)) != ICS_OK) return st;
        return push(m, ics_pv_new_int(m->arena, (int64_t)rd_le(p, 2), m->err));
    case OP_LONG1:
        return push_long(m, 1);
    case OP_LONG4:
        return push_long(m, 4);
    case OP_BINFLOAT: { /* 8 bytes, big-endian IEEE double */
        if ((st = take(m, 8, &p)) != ICS_OK) return st;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = (bits << 8) | p[i];
        double f;
        memcpy(&f, &bits, sizeof f);
        return push(m, ics_pv_new_float(m->arena, f, m->err));
    }
    case OP_SHORT_BINUNICODE:
        return push_text(m, ICS_PV_STRING, 1);
    case OP_BINUNICODE:
        return push_text(m, ICS_PV_STRING, 4);
    case OP_BINUNICODE8:
        return push_text(m, ICS_PV_STRING, 8);
    /* Python 2 str: torch's loader decodes them as text (encoding utf-8) */
    case OP_SHORT_BINSTRING:
        return push_text(m, ICS_PV_STRING, 1);
    case OP_BINSTRING:
        return push_text(m, ICS_PV_STRING, 4);
    case OP_SHORT_BINBYTES:
        return push_text(m, ICS_PV_BYTES, 1);
    case OP_BINBYTES:
        return push_text(m, ICS_PV_BYTES, 4);
    case OP_BINBYTES8:
        return push_text(m, ICS_PV_BYTES, 8);
    case OP_BYTEARRAY8:
        return push_text(m, ICS_PV_BYTES, 8);
    case OP_EMPTY_TUPLE:
        return push(m, ics_pv_new(m->arena, ICS_PV_TUPLE, m->err));
    case OP_TUPLE1:
        return tuple_n(m, 1);
    case OP_TUPLE2:
        return tuple_n(m, 2);
    case OP_TUPLE3:
        return tuple_n(m, 3);
    case OP_TUPLE:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        return collect(m, start, ICS_PV_TUPLE);
    case OP_LIST:
    case OP_FROZENSET:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        return collect(m, start, ICS_PV_LIST);
    case OP_EMPTY_LIST:
    case OP_EMPTY_SET:
        return push(m, ics_pv_new(m->arena, ICS_PV_LIST, m->err));
    case OP_APPEND:
        return extend(m, m->depth > fence(m) ? m->depth - 1 : 0);
    case OP_APPENDS:
    case OP_ADDITEMS:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        return extend(m, start);
    case OP_EMPTY_DICT:
        return push(m, ics_pv_new_dict(m->arena, 0, m->err));
    case OP_DICT:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        if ((st = push(m, ics_pv_new_dict(m->arena, 0, m->err))) != ICS_OK) return st;
        /* move the new dict below the pairs so set_items finds it there */
        a = m->stack[m->depth - 1];
        memmove(m->stack + start + 1, m->stack + start, (m->depth - 1 - start) * sizeof *m->stack);
        m->stack[start] = a;
        if ((st = set_items(m, start + 1)) != ICS_OK) return st;
        return ICS_OK;
    case OP_SETITEM:
        return set_items(m, m->depth >= fence(m) + 2 ? m->depth - 2 : 0);
    case OP_SETITEMS:
        if ((st = pop_mark(m, &start)) != ICS_OK) return st;
        return set_items(m, start);
    case OP_BINPUT:
        if ((st = take(m, 1, &p)) != ICS_OK) return st;
        return memo_put(m, p[0]);
    case OP_LONG_BINPUT:
        if ((st = take(m, 4, &p)) != ICS_OK) return st;
        return memo_put(m, rd_le(p, 4));
    case OP_MEMOIZE: /* Python: memo[len(memo)] = top */
        return memo_put(m, m->memo_count);
    case OP_BINGET:
        if ((st = take(m, 1, &p)) != ICS_OK) return st;
        return memo_get(m, p[0]);
    case OP_LONG_BINGET:
        if ((st = take(m, 4, &p)) != ICS_OK) return st;
        return memo_get(m, rd_le(p, 4));
    case OP_GLOBAL: {
        const char *mod, *name;
        size_t lm, ln;
        if ((st = read_line(m, &mod, &lm)) != ICS_OK || (st = read_line(m, &name, &ln)) != ICS_OK)
            return st;
        return push_global(m, mod, lm, name, ln);
    }
    case OP_STACK_GLOBAL:
        if ((st = pop(m, &b)) != ICS_OK || (st = pop(m, &a)) != ICS_OK) return st;
        if (a->kind != ICS_PV_STRING || b->kind != ICS_PV_STRING)
            return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "STACK_GLOBAL needs two strings");
        return push_global(m, a->u.str.data, a->u.str.len, b->u.str.data, b->u.str.len);
    case OP_REDUCE:
    case OP_NEWOBJ:
        if ((st = pop(m, &b)) != ICS_OK || (st = pop(m, &a)) != ICS_OK) return st;
        return call(m, a, b, NULL);
    case OP_NEWOBJ_EX:
        if ((st = pop(m, &c)) != ICS_OK || (st = pop(m, &b)) != ICS_OK ||
            (st = pop(m, &a)) != ICS_OK)
            return st;
        return call(m, a, b, c->kind == ICS_PV_DICT && c->u.dict.len == 0 ? NULL : c);
    case OP_BUILD:
        return build(m);
    case OP_BINPERSID:
        if ((st = pop(m, &a)) != ICS_OK) return st;
        if (!m->hooks || !m->hooks->persistent_load)
            return VM_FAIL(m, ICS_ERR_FORMAT, "%s", "persistent id without a loader for it");
        b = m->hooks->persistent_load(m->hooks->ctx, m->arena, a, m->err);
        if (!b) {
            ics_error_prefix(m->err, "%s: pickle offset %zu: ", m->label, m->op_pos);
            return failed(m);
        }
        return push(m, b);
    default:
        if (op >= 0x20 && op < 0x7f)
            return VM_FAIL(m, ICS_ERR_FORMAT, "unknown or unsupported opcode 0x%02x ('%c')", op,
                           op);
        return VM_FAIL(m, ICS_ERR_FORMAT, "unknown or unsupported opcode 0x%02x", op);
    }
}

ics_status ics_pickle_load_prefix(const uint8_t *data, size_t size, const char *label,
                                  ics_pv_arena *arena, const ics_pickle_hooks *hooks,
                                  const ics_pickle_limits *limits, ics_pv **root, size_t *consumed,
                                  ics_error *err)
{
    ics_error local;
    if (!err) err = &local;
    ics_error_clear(err);
    vm m = {.data = data,
            .size = size,
            .label = label ? label : "pickle",
            .arena = arena,
            .hooks = hooks,
            .limits = limits ? limits : &ics_pickle_default_limits,
            .err = err};
    *root = NULL;
    ics_status st = ICS_OK;
    int stop = 0;
    while (!stop && st == ICS_OK)
        st = step(&m, &stop);
    if (st == ICS_OK) *root = m.stack[m.depth - 1];
    if (consumed) *consumed = m.pos;
    free(m.stack);
    free(m.marks);
    free(m.memo);
    return st;
}

ics_status ics_pickle_load(const uint8_t *data, size_t size, const char *label, ics_pv_arena *arena,
                           const ics_pickle_hooks *hooks, const ics_pickle_limits *limits,
                           ics_pv **root, ics_error *err)
{
    return ics_pickle_load_prefix(data, size, label, arena, hooks, limits, root, NULL, err);
}
