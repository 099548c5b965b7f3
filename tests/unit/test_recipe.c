/* Recipes: loading, variables, recipe_args, schemas, staged recipes,
 * compose, selectors, schedule facts, and the shared upstream recipes. */
#include "ics_build_config.h"
#include "test_util.h"
#include "core/alloc.h"
#include "sparsify/recipe_internal.h"

#include <icsparse/recipe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static ics_recipe *load_ok(const char *text, const char *args)
{
    ics_error err;
    ics_error_clear(&err);
    ics_recipe *r = NULL;
    ics_status st = ics_recipe_load_string(text, "t.yaml", args, &r, &err);
    if (st != ICS_OK) fprintf(stderr, "\n  unexpected error: %s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
    return r;
}

/* Loads text that must fail and checks the message contains want. */
static void load_fails(const char *text, const char *args, const char *want)
{
    ics_error err;
    ics_error_clear(&err);
    ics_recipe *r = NULL;
    ics_status st = ics_recipe_load_string(text, "t.yaml", args, &r, &err);
    CU_ASSERT_NOT_EQUAL(st, ICS_OK);
    CU_ASSERT_PTR_NULL(r);
    if (!strstr(err.message, want))
        fprintf(stderr, "\n  message '%s' lacks '%s'\n", err.message, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
    ics_recipe_destroy(r);
}

static const ics_modifier *find_mod(const ics_recipe *r, ics_modifier_type type, int nth)
{
    for (size_t i = 0; i < ics_recipe_modifier_count(r); i++) {
        const ics_modifier *m = ics_recipe_modifier(r, i);
        if (m->type == type && nth-- == 0) return m;
    }
    return NULL;
}

/* Evaluates "eval(EXPR)" inside a recipe (as an ExponentialLR gamma, a
 * field without a range check) with variables a=6, b=4, f=2.5, n=-3. */
static double eval_num(const char *expr)
{
    char text[512];
    snprintf(text, sizeof text,
             "a: 6\nb: 4\nf: 2.5\nn: -3\nmodifiers:\n  - !LearningRateModifier\n    lr_class: "
             "ExponentialLR\n    start_epoch: 0\n    init_lr: 0.1\n    lr_kwargs:\n      gamma: "
             "eval(%s)\n",
             expr);
    ics_recipe *r = load_ok(text, NULL);
    if (!r) return NAN;
    double v = ics_recipe_modifier(r, 0)->u.lr.gamma;
    ics_recipe_destroy(r);
    return v;
}

/* Direct evaluation through the grammar, to see int/float kinds. */
static ics_status lookup_ab(void *ctx, const char *name, int line, int column, rnum *out,
                            ics_error *err)
{
    (void)ctx;
    if (strcmp(name, "a") == 0) {
        out->v = 6;
        out->is_int = 1;
        return ICS_OK;
    }
    return RECIPE_FAIL(err, "x", line, column, "unknown variable '%s'", name);
}

static rnum expr(const char *text)
{
    ics_error err;
    ics_error_clear(&err);
    rnum r = {NAN, 0};
    ics_status st = rexpr_eval(text, lookup_ab, NULL, "x", 1, 1, &r, &err);
    if (st != ICS_OK) fprintf(stderr, "\n  %s: %s\n", text, err.message);
    CU_ASSERT_EQUAL(st, ICS_OK);
    return r;
}

static void expr_fails(const char *text, const char *want)
{
    ics_error err;
    ics_error_clear(&err);
    rnum r;
    CU_ASSERT_NOT_EQUAL(rexpr_eval(text, lookup_ab, NULL, "x", 3, 10, &r, &err), ICS_OK);
    if (!strstr(err.message, want)) fprintf(stderr, "\n  '%s' lacks '%s'\n", err.message, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
}

static char *upstream_dir(void)
{
    char *dir = malloc(4096);
    snprintf(dir, 4096, "%s/../shared/recipes/upstream", ics_test_srcdir());
    if (access(dir, R_OK) != 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* ---- eval() ------------------------------------------------------------ */

static void test_expr_operators(void)
{
    rnum r;
    r = expr("1 + 2");
    CU_ASSERT(r.v == 3 && r.is_int);
    r = expr("7 - 10");
    CU_ASSERT(r.v == -3 && r.is_int);
    r = expr("3 * 4");
    CU_ASSERT(r.v == 12 && r.is_int);
    r = expr("7 / 2"); /* true division: always a float */
    CU_ASSERT(r.v == 3.5 && !r.is_int);
    r = expr("4 / 2");
    CU_ASSERT(r.v == 2 && !r.is_int);
    r = expr("7 // 2");
    CU_ASSERT(r.v == 3 && r.is_int);
    r = expr("-7 // 2"); /* floors, like Python */
    CU_ASSERT(r.v == -4 && r.is_int);
    r = expr("7.5 // 2");
    CU_ASSERT(r.v == 3 && !r.is_int);
    r = expr("-7 % 3"); /* sign of the divisor, like Python */
    CU_ASSERT(r.v == 2 && r.is_int);
    r = expr("7 % -3");
    CU_ASSERT(r.v == -2);
    r = expr("2 ** 10");
    CU_ASSERT(r.v == 1024 && r.is_int);
    r = expr("2 ** -1");
    CU_ASSERT(r.v == 0.5 && !r.is_int);
    r = expr("2 ** 3 ** 2"); /* right associative */
    CU_ASSERT(r.v == 512);
    r = expr("1.5e1 + .5");
    CU_ASSERT(r.v == 15.5 && !r.is_int);
    r = expr("a * 2");
    CU_ASSERT(r.v == 12 && r.is_int);
}

static void test_expr_unary_minus_and_precedence(void)
{
    rnum r;
    r = expr("-a");
    CU_ASSERT(r.v == -6 && r.is_int);
    r = expr("- -a");
    CU_ASSERT(r.v == 6);
    r = expr("-2 ** 2"); /* ** binds tighter than unary minus */
    CU_ASSERT(r.v == -4);
    r = expr("(-2) ** 2");
    CU_ASSERT(r.v == 4);
    r = expr("1 + 2 * 3");
    CU_ASSERT(r.v == 7);
    r = expr("(1 + 2) * 3");
    CU_ASSERT(r.v == 9);
    r = expr("10 - 4 - 3"); /* left associative */
    CU_ASSERT(r.v == 3);
    r = expr("2 * 3 % 4");
    CU_ASSERT(r.v == 2);
    r = expr("+3 - -2");
    CU_ASSERT(r.v == 5);
    r = expr("a - 2 * -3");
    CU_ASSERT(r.v == 12);
}

static void test_expr_functions(void)
{
    rnum r;
    r = expr("abs(-2.5)");
    CU_ASSERT(r.v == 2.5 && !r.is_int);
    r = expr("abs(-3)");
    CU_ASSERT(r.v == 3 && r.is_int);
    r = expr("float(3)");
    CU_ASSERT(r.v == 3 && !r.is_int);
    r = expr("int(-3.7)"); /* toward zero */
    CU_ASSERT(r.v == -3 && r.is_int);
    r = expr("min(4, a, 5.5)");
    CU_ASSERT(r.v == 4 && r.is_int);
    r = expr("max(4, a, 5.5)");
    CU_ASSERT(r.v == 6 && r.is_int);
    r = expr("round(2.5)"); /* half to even */
    CU_ASSERT(r.v == 2 && r.is_int);
    r = expr("round(3.5)");
    CU_ASSERT(r.v == 4);
    r = expr("round(-0.5)");
    CU_ASSERT(r.v == 0);
    r = expr("round(1.2345, 2)");
    CU_ASSERT(fabs(r.v - 1.23) < 1e-12 && !r.is_int);
    r = expr("max(1, 2) * min(3, 4) + abs(-1)");
    CU_ASSERT(r.v == 7);
}

static void test_expr_errors(void)
{
    expr_fails("1 / 0", "division by zero");
    expr_fails("1 // 0", "division by zero");
    expr_fails("1 % 0.0", "division by zero");
    expr_fails("a / (a - 6)", "division by zero");
    expr_fails("zz + 1", "unknown variable 'zz'");
    expr_fails("__import__(1)", "unknown function '__import__'");
    expr_fails("open(1)", "unknown function 'open'");
    expr_fails("a.b", "unexpected '.'");
    expr_fails("'x'", "unexpected '''");
    expr_fails("1 +", "unexpected end");
    expr_fails("(1 + 2", "expected ')'");
    expr_fails("1 2", "unexpected '2' after");
    expr_fails("min(1)", "at least two");
    expr_fails("round(x=1)", "keyword arguments");
    expr_fails("0 ** -1", "zero to a negative power");
    expr_fails("(-8) ** 0.5", "fractional power");
    expr_fails("10 ** 400", "overflow");
    expr_fails("", "empty expression");
    expr_fails("1.2.3", "bad number '1.2.3'");
    expr_fails("max(1 2)", "expected ')' or ','");
    expr_fails("round(1.5, 1.5)", "round() digits must be an int");
    expr_fails("round(1, 2, 3)", "round() takes one or two arguments");
    expr_fails("abs(1, 2)", "abs() takes one argument");
    expr_fails("float()", "float() takes one argument");
    expr_fails("int(1, 2)", "int() takes one argument");
    expr_fails("max(1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17)", "too many arguments");
    expr_fails(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "name too long");
    char nested[1200];
    memset(nested, '(', 500);
    strcpy(nested + 500, "1");
    memset(nested + 501, ')', 500);
    nested[1001] = '\0';
    expr_fails(nested, "expression nested too deeply");
    memset(nested, '-', 500);
    strcpy(nested + 500, "1");
    expr_fails(nested, "expression nested too deeply");
    {
        /* without a variable table every name is unknown */
        ics_error e;
        rnum v;
        CU_ASSERT_NOT_EQUAL(rexpr_eval("q + 1", NULL, NULL, "x", 1, 1, &v, &e), ICS_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "unknown variable 'q'"));
    }
    /* error position: line 3, column 10 + offset of the bad token */
    ics_error err;
    ics_error_clear(&err);
    rnum r;
    rexpr_eval("1 + zz", lookup_ab, NULL, "x", 3, 10, &r, &err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "x:3:14:"));
}

static void test_eval_in_recipes(void)
{
    CU_ASSERT_DOUBLE_EQUAL(eval_num("a * f - -n"), 12.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(eval_num("-n ** 2"), -9.0, 1e-12); /* -(n ** 2), n = -3 */
    CU_ASSERT_DOUBLE_EQUAL(eval_num("-n"), 3.0, 1e-12);       /* upstream fails on this */
    CU_ASSERT_DOUBLE_EQUAL(eval_num("(a + b) / f"), 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(eval_num("max(a, b) // 4 + a % b"), 3.0, 1e-12);
}

/* The grammar against Python itself: the same expressions evaluated by
 * Python's eval() (in the test only) give the same value and int/float. */
static void test_expr_matches_python(void)
{
    static const char *const exprs[] = {"1 + 2 * 3",
                                        "7 / 2",
                                        "-7 // 2",
                                        "7.5 // 2",
                                        "-7.5 % 2",
                                        "-7 % 3",
                                        "7 % -3",
                                        "2 ** -1",
                                        "2 ** 3 ** 2",
                                        "-2 ** 2",
                                        "(-2) ** 3",
                                        "-(-3) ** 2",
                                        "1.5e1 + .5",
                                        "10 / 4 * 3 - 1",
                                        "(1 + 2) * 3 % 4 // 1",
                                        "abs(-3)",
                                        "abs(-2.5)",
                                        "float(3)",
                                        "int(-3.7)",
                                        "int(7 / 2)",
                                        "min(3, 2.0)",
                                        "max(2, 2.0)",
                                        "max(4, 6, 5.5)",
                                        "round(2.5)",
                                        "round(3.5)",
                                        "round(-0.5)",
                                        "round(1.2345, 2)",
                                        "round(5, 1)",
                                        "round(2.675, 2)",
                                        "round(0.125, 2)",
                                        "round(1234.5, -2)",
                                        "round(15, -1)",
                                        "0.1 + 0.2",
                                        "3 * 0.1",
                                        "2 ** 0.5",
                                        "100 // 7 * 7 + 100 % 7",
                                        "- - + - 4",
                                        "1e-3 * 4",
                                        "90 * 0.4 - 1",
                                        "(135 - 100) / 5 ** 2",
                                        NULL};
    const char *python = getenv("PYTHON_TORCH");
    if (!python || !python[0]) python = "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        fprintf(stderr, "\n  SKIP: no Python at %s to compare eval() with\n", python);
        return;
    }
    char *dir = ics_test_tmpdir("expr");
    rbuf text = {0};
    for (int i = 0; exprs[i]; i++)
        rbuf_printf(&text, "%s\n", exprs[i]);
    char *in = ics_test_write_file(dir, "exprs.txt", text.data);
    char command[8192];
    snprintf(command, sizeof command,
             "%s -c 'import sys\nfor e in open(sys.argv[1]):\n"
             "    v = eval(e)\n    print(repr(float(v)), type(v).__name__)' %s",
             python, in);
    char *output = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_test_run(command, &output), 0);
    char *line = output;
    for (int i = 0; exprs[i] && line; i++) {
        double want = strtod(line, NULL);
        int want_int = strstr(line, " int") != NULL && strstr(line, " int") < strchr(line, '\n');
        rnum got = expr(exprs[i]);
        if (fabs(got.v - want) > 1e-12 * fmax(1.0, fabs(want)) || got.is_int != want_int)
            fprintf(stderr, "\n  %s: icsparse %.17g (%s), Python %s", exprs[i], got.v,
                    got.is_int ? "int" : "float", line);
        CU_ASSERT_DOUBLE_EQUAL(got.v, want, 1e-12 * fmax(1.0, fabs(want)));
        CU_ASSERT_EQUAL(got.is_int, want_int);
        line = strchr(line, '\n');
        if (line) line++;
    }
    free(output);
    free(in);
    free(text.data);
    ics_test_rmtree(dir);
    free(dir);
}

/* ---- variables ------------------------------------------------------- */

static void test_variables_any_order_and_errors(void)
{
    /* dependencies in any order */
    ics_recipe *r = load_ok("end: eval(start + len)\nlen: eval(2 * base)\nstart: 1\nbase: 1.5\n"
                            "modifiers:\n  - !EpochRangeModifier\n    start_epoch: eval(start)\n"
                            "    end_epoch: eval(end)\n",
                            NULL);
    if (r) {
        CU_ASSERT_DOUBLE_EQUAL(ics_recipe_modifier(r, 0)->end_epoch, 4.0, 1e-12);
        CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 4);
    }
    ics_recipe_destroy(r);
    load_fails("a: eval(b + 1)\nb: eval(c * 2)\nc: eval(a)\n"
               "modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    end_epoch: eval(a)\n",
               NULL, "depends on itself");
    load_fails("a: eval(a + 1)\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n"
               "    end_epoch: eval(a)\n",
               NULL, "variable 'a' depends on itself");
    load_fails("a: 1\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    end_epoch: "
               "eval(a + b)\n",
               NULL, "t.yaml:5:25: unknown variable 'b' in eval()");
    load_fails("a: 1\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    end_epoch: "
               "eval(a / 0)\n",
               NULL, "t.yaml:5:23: eval(a / 0): division by zero");
    /* a non-numeric variable used inside arithmetic */
    load_fails("names: [x]\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n"
               "    end_epoch: eval(names + 1)\n",
               NULL, "variable 'names' is not a number");
}

static void test_non_numeric_variable_whole(void)
{
    ics_recipe *r =
        load_ok("prune_params: ['a.weight', 'b.weight']\n"
                "modifiers:\n  - !ConstantPruningModifier\n    params: eval(prune_params)\n",
                NULL);
    if (r) {
        const ics_modifier *m = ics_recipe_modifier(r, 0);
        CU_ASSERT_EQUAL(m->u.pruning.params.count, 2);
        CU_ASSERT_STRING_EQUAL(m->u.pruning.params.names[1], "b.weight");
    }
    ics_recipe_destroy(r);
}

/* ---- recipe_args ----------------------------------------------------------- */

static const char *anchored = "num_epochs: &num_epochs 10\n"
                              "warm: &warm eval(num_epochs / 5)\n"
                              "lr: 0.1\n"
                              "training_modifiers:\n"
                              "  - !EpochRangeModifier\n"
                              "    start_epoch: 0\n"
                              "    end_epoch: *num_epochs\n"
                              "  - !LearningRateFunctionModifier\n"
                              "    start_epoch: *warm\n"
                              "    end_epoch: *num_epochs\n"
                              "    lr_func: cosine\n"
                              "    init_lr: eval(lr)\n"
                              "    final_lr: 0.0\n";

static void test_recipe_args_override_anchors(void)
{
    ics_recipe *r = load_ok(anchored, NULL);
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 10);
    ics_recipe_destroy(r);
    /* JSON: the override reaches every alias of &num_epochs, and the
     * variables computed from it */
    r = load_ok(anchored, "{\"num_epochs\": 20, \"lr\": 0.5}");
    if (r) {
        CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 20);
        const ics_modifier *range = find_mod(r, ICS_MOD_EPOCH_RANGE, 0);
        const ics_modifier *cos = find_mod(r, ICS_MOD_LR_FUNCTION, 0);
        CU_ASSERT_DOUBLE_EQUAL(range->end_epoch, 20, 0);
        CU_ASSERT_DOUBLE_EQUAL(cos->end_epoch, 20, 0);
        CU_ASSERT_DOUBLE_EQUAL(cos->start_epoch, 4, 0);
        CU_ASSERT_DOUBLE_EQUAL(cos->u.lr_function.init_lr, 0.5, 0);
    }
    ics_recipe_destroy(r);
    /* YAML mapping text, an eval() value */
    r = load_ok(anchored, "warm: eval(num_epochs - 1)\n");
    if (r) CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_LR_FUNCTION, 0)->start_epoch, 9, 0);
    ics_recipe_destroy(r);
    /* a modifier field named by recipe_args when no variable has the name */
    r = load_ok(anchored, "{\"final_lr\": 0.001}");
    if (r)
        CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_LR_FUNCTION, 0)->u.lr_function.final_lr, 0.001,
                               0);
    ics_recipe_destroy(r);
    /* SparseML's CSV form: k=v,k2:v2 */
    r = load_ok(anchored, "num_epochs=30, lr:0.25");
    if (r) {
        CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 30);
        CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_LR_FUNCTION, 0)->u.lr_function.init_lr, 0.25, 0);
    }
    ics_recipe_destroy(r);
    load_fails(anchored, "num_epochs=3,lr", "recipe_args: 'lr' is not a key=value pair");
    load_fails(anchored, "num_epochs=3=4", "recipe_args: 'num_epochs=3=4' is not a key=value pair");
    load_fails(anchored, "{\"num_epoch\": 3}", "recipe_args: 'num_epoch' is not a variable");
    load_fails(anchored, "[1, 2]", "recipe_args must be a JSON or YAML mapping");
    load_fails(anchored, "{\"a\": ", "bad recipe_args");
}

/* ---- schemas ------------------------------------------------------------- */

static void test_schema_errors(void)
{
    load_fails("modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    end_epoch: 1\n"
               "  - !FancyModifier\n    start_epoch: 0\n",
               NULL, "t.yaml:5:5: unknown modifier !FancyModifier");
    load_fails("modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    end_epch: 1\n", NULL,
               "t.yaml:4:5: unknown field 'end_epch' for EpochRangeModifier");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.05\n    final_sparsity: 0.8\n"
        "    start_epoch: 0\n    end_epoch: 10\n    params: __ALL_PRUNABLE__\n",
        NULL, "t.yaml:2:5: GMPruningModifier is missing required field 'update_frequency'");
    load_fails(
        "modifiers:\n  - !SetLearningRateModifier\n    start_epoch: 0\n    learning_rate: fast\n",
        NULL,
        "t.yaml:4:20: SetLearningRateModifier: field 'learning_rate' must be a number, "
        "got 'fast'");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.05\n    final_sparsity: 1.0\n"
        "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n    params: [a]\n",
        NULL, "t.yaml:4:21: GMPruningModifier: final_sparsity must be in [0, 1), got 1");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: -0.1\n    final_sparsity: 0.5\n"
        "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n    params: [a]\n",
        NULL, "init_sparsity must be in [0, 1)");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.0\n    final_sparsity: 0.5\n"
        "    start_epoch: 5\n    end_epoch: 2\n    update_frequency: 1\n    params: [a]\n",
        NULL, "t.yaml:6:16: GMPruningModifier: end_epoch (2) must be -1 or >= start_epoch (5)");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.0\n    final_sparsity: 0.5\n"
        "    start_epoch: 0\n    end_epoch: 2\n    update_frequency: 1\n    params: [a]\n"
        "    inter_func: quadratic\n",
        NULL, "field 'inter_func' must be one of linear|cubic|inverse_cubic, got 'quadratic'");
    load_fails(
        "modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.0\n    final_sparsity: 0.5\n"
        "    start_epoch: 0\n    end_epoch: 2\n    update_frequency: 1\n    params: [a]\n"
        "    mask_type: '4:2'\n",
        NULL, "unknown mask_type '4:2'");
    load_fails(
        "modifiers:\n  - !LearningRateFunctionModifier\n    start_epoch: 3\n    end_epoch: 3\n"
        "    lr_func: linear\n    init_lr: 0.1\n    final_lr: 0.01\n",
        NULL, "end_epoch (3) must be > start_epoch (3)");
    load_fails(
        "modifiers:\n  - !LearningRateModifier\n    lr_class: MultiStepLR\n    init_lr: 0.1\n"
        "    lr_kwargs: {milestones: [5, 3]}\n    start_epoch: 0\n",
        NULL, "milestones must be increasing numbers");
    load_fails("modifiers:\n  - !LearningRateModifier\n    lr_class: StepLR\n    init_lr: 0.1\n"
               "    lr_kwargs: {step: 3}\n    start_epoch: 0\n",
               NULL,
               "t.yaml:5:23: LearningRateModifier: lr_kwargs key 'step' is not used by StepLR");
    load_fails("modifiers:\n  - !LearningRateModifier\n    lr_class: StepLR\n    init_lr: 0.1\n"
               "    lr_kwargs: {gamma: 0.3}\n    start_epoch: 0\n",
               NULL, "lr_kwargs needs 'step_size' for StepLR");
    load_fails("modifiers:\n  - !QuantizationModifier\n    start_epoch: 5\n"
               "    freeze_bn_stats_epoch: 4\n",
               NULL, "freeze_bn_stats_epoch (4) must be >= start_epoch (5)");
    load_fails("modifiers:\n  - !QuantizationModifier\n    num_bits: 1\n", NULL,
               "num_bits must be in [2, 16]");
    load_fails("modifiers:\n  - !DistillationModifier\n    hardness: 1.5\n", NULL,
               "hardness must be in [0, 1]");
    load_fails(
        "modifiers:\n  - !ConstantPruningModifier\n    params: [a]\n    update_frequency: 2\n",
        NULL, "update_frequency must be -1");
    load_fails("modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n    start_epoch: 1\n    "
               "end_epoch: 2\n",
               NULL, "t.yaml:4:5: EpochRangeModifier: field 'start_epoch' given twice");
    load_fails("a: 1\nlist:\n  - !EpochRangeModifier\n    start_epoch: 0\n", NULL,
               "t.yaml:3:5: !EpochRangeModifier under 'list': modifiers must be in a list under a "
               "key containing 'modifiers'");
    load_fails("a: 1\nb: [2]\n", NULL, "t.yaml:1:1: no modifiers");
    load_fails("modifiers:\n  a: 1\n", NULL, "'modifiers' must be a list of !Modifier mappings");
    load_fails("modifiers:\n  - {start_epoch: 0}\n", NULL, "without a !ModifierName tag");
    load_fails("modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0\n   end_epoch: 1\n", NULL,
               "YAML syntax error");
    load_fails("modifiers: *nowhere\n", NULL, "t.yaml:1:12: undefined alias *nowhere");
    load_fails("- 1\n- 2\n", NULL, "a recipe must be a mapping");
    load_fails(
        "stage_0:\n  s0_modifiers:\n    - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n"
        "modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n",
        NULL, "both top-level modifier lists and stages");
}

#define GMP "modifiers:\n  - !GMPruningModifier {init_sparsity: 0.0, start_epoch: 0, end_epoch: 4, "

/* Every other message the loader can give, each from a real recipe. */
static void test_more_errors(void)
{
    static const struct {
        const char *text, *args, *want;
    } cases[] = {
        {"modifiers:\n  - !EpochRangeModifier [1]\n", NULL,
         "t.yaml:2:5: !EpochRangeModifier must be a mapping of fields"},
        {"modifiers:\n  - !EpochRangeModifier {[a]: 1}\n", NULL,
         "t.yaml:2:26: EpochRangeModifier: a field name must be a string"},
        {GMP "update_frequency: 1, params: [], final_sparsity: {high: [a]}}\n", NULL,
         "GMPruningModifier: final_sparsity key 'high' is not a number"},
        {GMP "update_frequency: 1, params: [b], final_sparsity: {0.5: [a]}}\n", NULL,
         "with a final_sparsity mapping, params must be []"},
        {GMP "update_frequency: 1, params: [], final_sparsity: 0.5}\n", NULL,
         "params must select at least one parameter"},
        {GMP "update_frequency: 0, params: [a], final_sparsity: 0.5}\n", NULL,
         "update_frequency must be > 0 or -1, got 0"},
        {GMP "update_frequency: 1, params: [a], final_sparsity: 0.5, phased: true}\n", NULL,
         "phased pruning is not supported"},
        {GMP "update_frequency: 1, params: [a], final_sparsity: 0.5, score_type: grad}\n", NULL,
         "score_type must be 'magnitude', got 'grad'"},
        {"modifiers:\n  - !GMPruningModifier {init_sparsity: 0.0, start_epoch: 2, end_epoch: 2, "
         "update_frequency: 1, params: [a], final_sparsity: 0.5}\n",
         NULL, "end_epoch must be greater than start_epoch for gradual pruning"},
        {"modifiers:\n  - !ConstantPruningModifier {params: !Foo [a]}\n", NULL,
         "t.yaml:2:39: modifier !Foo is not in a list under a key containing 'modifiers'"},
        {"modifiers:\n  - !TrainableParamsModifier {params: [], trainable: true}\n", NULL,
         "TrainableParamsModifier: params must select at least one parameter"},
        {"modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 0.9, start_epoch: -1, "
         "end_epoch: 20, update_frequency: 5, params: [a]}\n",
         NULL, "ACDCPruningModifier: start_epoch must be >= 0"},
        {"modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 0.9, start_epoch: 0, "
         "end_epoch: 20, update_frequency: -1, params: [a]}\n",
         NULL, "update_frequency (the phase length) must be > 0"},
        {"modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 1.5, start_epoch: 0, "
         "end_epoch: 20, update_frequency: 5, params: [a]}\n",
         NULL, "compression_sparsity must be in [0, 1), got 1.5"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: 0.1, start_epoch: 0, "
         "lr_kwargs: {step_size: x}}\n",
         NULL, "LearningRateModifier: lr_kwargs step_size must be a number"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: 0.1, start_epoch: 0, "
         "lr_kwargs: {step_size: 0, gamma: 0.1}}\n",
         NULL, "step_size must be > 0"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: MultiStepLR, init_lr: 0.1, start_epoch: "
         "0, "
         "lr_kwargs: {milestones: 5}}\n",
         NULL, "milestones must be a list of epochs"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: CosineAnnealingWarmRestarts, "
         "init_lr: 0.1, start_epoch: 0, lr_kwargs: {cycle_epochs: 0, lr_min: 0}}\n",
         NULL, "cycle_epochs must be > 0"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: 0.1, start_epoch: 0, "
         "lr_kwargs: {[a]: 1}}\n",
         NULL, "a mapping key must be a scalar"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: 0.1, start_epoch: 0, "
         "lr_kwargs: {gamma: 1, gamma: 2}}\n",
         NULL, "duplicate key 'gamma'"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: -0.1, "
         "lr_kwargs: {step_size: 1, gamma: 0.1}, start_epoch: 0}\n",
         NULL, "LearningRateModifier: init_lr must be in (0, 1], got -0.1"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: StepLR, init_lr: 0.1, start_epoch: 0, "
         "lr_kwargs: {step_size: 1, gamma: 0.1}, update_frequency: 1}\n",
         NULL, "LearningRateModifier: update_frequency is unused and must be -1"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: MultiStepLR, init_lr: 0.1, "
         "start_epoch: 0, lr_kwargs: {milestones: [2]}}\n",
         NULL, "lr_kwargs needs 'gamma' for MultiStepLR"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: MultiStepLR, init_lr: 0.1, "
         "start_epoch: 3, end_epoch: 9, lr_kwargs: {milestones: [5, 9], gamma: 0.1}}\n",
         NULL, "milestone 9 must be > start_epoch (3) and < end_epoch (9)"},
        {"modifiers:\n  - !LearningRateModifier {lr_class: CosineAnnealingWarmRestarts, "
         "init_lr: 0.1, start_epoch: 0, lr_kwargs: {lr_min: 0, cycle_epochs: 5, T_mult: 0.5}}\n",
         NULL, "lr_kwargs T_mult must be an integer >= 1"},
        {"modifiers:\n  - !LearningRateFunctionModifier {lr_func: linear, init_lr: 0.1, "
         "final_lr: 0, start_epoch: 0, end_epoch: 1, update_frequency: 0.5}\n",
         NULL, "LearningRateFunctionModifier: update_frequency is unused and must be -1"},
        {"modifiers:\n  - !LearningRateFunctionModifier {lr_func: linear, init_lr: -1, "
         "final_lr: 0, start_epoch: 0, end_epoch: 1}\n",
         NULL, "LearningRateFunctionModifier: init_lr must be in [0, 1], got -1"},
        {"modifiers:\n  - !LearningRateFunctionModifier {lr_func: linear, init_lr: 1, "
         "final_lr: 1.5, start_epoch: 0, end_epoch: 1}\n",
         NULL, "final_lr must be in [0, 1], got 1.5"},
        {"modifiers:\n  - !LearningRateFunctionModifier {lr_func: cyclic_linear, init_lr: 1, "
         "final_lr: 0, start_epoch: 0, end_epoch: 1, cycle_epochs: 0}\n",
         NULL, "lr_func cyclic_linear needs cycle_epochs > 0"},
        {"modifiers:\n  - !SetLearningRateModifier {learning_rate: -1}\n", NULL,
         "learning_rate must be >= 0"},
        {"modifiers:\n  - !SetWeightDecayModifier {weight_decay: -1}\n", NULL,
         "weight_decay must be >= 0"},
        {"modifiers:\n  - !QuantizationModifier {start_epoch: 5, "
         "disable_quantization_observer_epoch: 4}\n",
         NULL, "disable_quantization_observer_epoch (4) must be >= start_epoch (5)"},
        {"modifiers:\n  - !DistillationModifier {temperature: 0}\n", NULL,
         "temperature must be > 0, got 0"},
        {"modifiers:\n  - !EpochRangeModifier {start_epoch: -0.5, end_epoch: 1}\n", NULL,
         "t.yaml:2:39: EpochRangeModifier: start_epoch must be -1 or >= 0, got -0.5"},
        {"modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: -2}\n", NULL,
         "end_epoch must be -1 or >= 0, got -2"},
        {"modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(nope)}\n", NULL,
         "t.yaml:2:58: unknown variable 'nope' in eval()"},
        {"x: eval(nope)\nmodifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n",
         NULL, "t.yaml:1:9: unknown variable 'nope' in eval()"},
        {"a: 1\na: 2\nmodifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n", NULL,
         "t.yaml:2:1: duplicate key 'a'"},
        {"[a]: 1\nmodifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n", NULL,
         "t.yaml:1:1: a top-level key must be a name"},
        {"a: &x [1, *x]\n", NULL, "t.yaml:1:11: alias *x refers to a node that contains it"},
        {"a: \"x\\0y\"\n", NULL, "t.yaml:1:4: NUL character in a scalar"},
        {"a: 1\n---\nb: 2\n", NULL, "more than one YAML document"},
        {"", NULL, "t.yaml: the recipe is empty"},
        {"# only a comment\n", NULL, "the recipe is empty"},
        {"modifiers: [a, b\n", NULL, "YAML syntax error: did not find expected ',' or ']'"},
        {"stage_0:\n  inner:\n    x_modifiers: []\n  stage_0_modifiers:\n"
         "    - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n",
         NULL, "t.yaml:2:3: stage 'inner' inside a stage"},
        {"modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n", "{[1]: 2}",
         "recipe_args:1:2: a key must be a name"},
        {"modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(1e308 * 10)}\n",
         NULL, "result is not a finite number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        load_fails(cases[i].text, cases[i].args, cases[i].want);

    /* limits: more than 64 modifier lists in one mapping */
    rbuf b = {0};
    for (int i = 0; i < 65; i++)
        rbuf_printf(&b, "m%d_modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n",
                    i);
    load_fails(b.data, NULL, "t.yaml:129:1: too many modifier lists");
    free(b.data);
    /* deep nesting is refused, not a stack overflow */
    char deep[700];
    memset(deep, '[', 600);
    strcpy(deep + 600, "\n");
    ics_error err;
    ics_recipe *r = NULL;
    CU_ASSERT_NOT_EQUAL(ics_recipe_load_string(deep, "t.yaml", NULL, &r, &err), ICS_OK);
    CU_ASSERT(strstr(err.message, "nested too deeply") || strstr(err.message, "YAML syntax error"));
}

/* YAML merge keys, as PyYAML's safe loader applies them. */
static void test_merge_keys(void)
{
    const char *text = "end: &end 10\n"
                       "gmp_defaults: &gmp\n"
                       "  init_sparsity: 0.05\n"
                       "  final_sparsity: 0.8\n"
                       "  start_epoch: 0\n"
                       "  end_epoch: *end\n"
                       "  update_frequency: 1\n"
                       "pruning_modifiers:\n"
                       "  - !GMPruningModifier\n"
                       "    <<: *gmp\n"
                       "    params: [a]\n"
                       "    final_sparsity: 0.9\n"
                       "  - !MagnitudePruningModifier\n"
                       "    <<: [{update_frequency: 2, init_sparsity: 0.1}, *gmp]\n"
                       "    params: [b]\n";
    ics_recipe *r = load_ok(text, NULL);
    if (r) {
        const ics_modifier *g = find_mod(r, ICS_MOD_GM_PRUNING, 0);
        const ics_modifier *m = find_mod(r, ICS_MOD_MAGNITUDE_PRUNING, 0);
        CU_ASSERT_DOUBLE_EQUAL(g->u.pruning.groups[0].sparsity, 0.9, 0); /* explicit key wins */
        CU_ASSERT_DOUBLE_EQUAL(g->u.pruning.init_sparsity, 0.05, 0);
        CU_ASSERT_DOUBLE_EQUAL(g->end_epoch, 10, 0);
        CU_ASSERT_DOUBLE_EQUAL(m->update_frequency, 2, 0); /* earlier merged mapping wins */
        CU_ASSERT_DOUBLE_EQUAL(m->u.pruning.init_sparsity, 0.1, 0);
        CU_ASSERT_DOUBLE_EQUAL(m->u.pruning.groups[0].sparsity, 0.8, 0);
    }
    ics_recipe_destroy(r);
    /* an override reaches values that came in through a merge */
    r = load_ok(text, "{\"end\": 20}");
    if (r) CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_MAGNITUDE_PRUNING, 0)->end_epoch, 20, 0);
    ics_recipe_destroy(r);
    load_fails("a: &a 1\nmodifiers:\n  - !EpochRangeModifier\n    <<: *a\n", NULL,
               "t.yaml:4:9: a merge key '<<' needs a mapping or a list of mappings");
}

static void test_log_types_and_defaults(void)
{
    ics_recipe *r = load_ok("modifiers:\n  - !GMPruningModifier\n    init_sparsity: 0.05\n"
                            "    final_sparsity: 0.8\n    start_epoch: 0\n    end_epoch: 10\n"
                            "    update_frequency: 1\n    params: ['re:.*weight']\n"
                            "    log_types: __ALL__\n",
                            NULL);
    if (r) {
        const ics_modifier *m = ics_recipe_modifier(r, 0);
        CU_ASSERT_EQUAL(m->u.pruning.inter_func, ICS_INTER_CUBIC);
        CU_ASSERT_EQUAL(m->u.pruning.mask_type, ICS_MASK_UNSTRUCTURED);
        CU_ASSERT_EQUAL(m->u.pruning.leave_enabled, 1);
        CU_ASSERT_EQUAL(m->u.pruning.global_sparsity, 0);
        ics_error err;
        char *yaml = ics_recipe_to_yaml(r, &err);
        CU_ASSERT_PTR_NULL(strstr(yaml, "log_types"));
        CU_ASSERT_PTR_NOT_NULL(strstr(yaml, "inter_func: 'cubic'"));
        free(yaml);
    }
    ics_recipe_destroy(r);
}

static void test_all_modifiers_fixture(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/all-modifiers.yaml", ics_test_srcdir());
    ics_error err;
    ics_error_clear(&err);
    ics_recipe *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_recipe_modifier_count(r), 11);
    const ics_modifier *m = find_mod(r, ICS_MOD_MAGNITUDE_PRUNING, 0);
    CU_ASSERT_EQUAL(m->u.pruning.mask_type, ICS_MASK_NM);
    CU_ASSERT_EQUAL(m->u.pruning.mask_n, 2);
    CU_ASSERT_EQUAL(m->u.pruning.mask_m, 4);
    CU_ASSERT_EQUAL(m->u.pruning.group_count, 2);
    CU_ASSERT_DOUBLE_EQUAL(m->u.pruning.groups[1].sparsity, 0.75, 0);
    CU_ASSERT_EQUAL(m->u.pruning.params.count, 2);
    m = find_mod(r, ICS_MOD_GLOBAL_MAGNITUDE_PRUNING, 0);
    CU_ASSERT_EQUAL(m->u.pruning.global_sparsity, 1);
    CU_ASSERT_EQUAL(m->u.pruning.mask_type, ICS_MASK_BLOCK);
    CU_ASSERT_EQUAL(m->u.pruning.block_cols, 4);
    CU_ASSERT_EQUAL(m->u.pruning.inter_func, ICS_INTER_INVERSE_CUBIC);
    m = find_mod(r, ICS_MOD_QUANTIZATION, 0);
    CU_ASSERT_EQUAL(m->u.quantization.has_submodules, 0);
    CU_ASSERT_EQUAL(m->u.quantization.exclude_module_types.count, 2);
    CU_ASSERT_EQUAL(m->u.quantization.quantize_linear_activations, 0);
    CU_ASSERT_DOUBLE_EQUAL(m->u.quantization.freeze_bn_stats_epoch, 17.5, 0);
    CU_ASSERT_STRING_EQUAL(m->u.quantization.model_fuse_fn_name, "fuse_module");
    m = find_mod(r, ICS_MOD_LR, 0);
    CU_ASSERT_EQUAL(m->u.lr.lr_class, ICS_LR_STEP);
    CU_ASSERT_DOUBLE_EQUAL(m->u.lr.step_size, 2, 0);
    CU_ASSERT_DOUBLE_EQUAL(m->u.lr.gamma, 0.5, 0);
    m = find_mod(r, ICS_MOD_LR_FUNCTION, 0);
    CU_ASSERT_EQUAL(m->u.lr_function.lr_func, ICS_LR_FUNC_CYCLIC_LINEAR);
    CU_ASSERT_DOUBLE_EQUAL(m->u.lr_function.cycle_epochs, 2.5, 0);
    m = find_mod(r, ICS_MOD_DISTILLATION, 0);
    CU_ASSERT_DOUBLE_EQUAL(m->u.distillation.hardness, 0.75, 0);
    CU_ASSERT_STRING_EQUAL(m->u.distillation.distill_output_keys.names[0], "0");
    m = find_mod(r, ICS_MOD_TRAINABLE_PARAMS, 0);
    CU_ASSERT_EQUAL(m->u.trainable.trainable, 0);
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 20);
    /* schedule order: end_epoch (-1 last), then start_epoch */
    double last_end = -2;
    int seen_never = 0;
    for (size_t i = 0; i < ics_recipe_modifier_count(r); i++) {
        const ics_modifier *x = ics_recipe_modifier(r, i);
        if (x->end_epoch == -1)
            seen_never = 1;
        else {
            CU_ASSERT(!seen_never);
            CU_ASSERT(x->end_epoch >= last_end);
            last_end = x->end_epoch;
        }
    }
    ics_recipe_destroy(r);
}

/* ---- .md front matter ---------------------------------------------------- */

static void test_markdown_front_matter(void)
{
    char path[4096];
    ics_error err;
    ics_recipe *r = NULL;
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/frontmatter-valid.md",
             ics_test_srcdir());
    CU_ASSERT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_OK);
    if (r) CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 3);
    ics_recipe_destroy(r);
    r = NULL;
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/frontmatter.md", ics_test_srcdir());
    CU_ASSERT_NOT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "frontmatter.md:9:5: unknown modifier !Bogus"));
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/staged.txt", ics_test_srcdir());
    CU_ASSERT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "must end in .yaml, .yml or .md"));
    CU_ASSERT_EQUAL(ics_recipe_load_file("/nonexistent/r.yaml", NULL, &r, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot open recipe"));
}

static void test_file_errors(void)
{
    char *dir = ics_test_tmpdir("recipe-files");
    char path[4096];
    ics_error err;
    ics_recipe *r = NULL;
    char *p = ics_test_write_file(dir, "open.md", "---\nmodifiers: []\n");
    CU_ASSERT_EQUAL(ics_recipe_load_file(p, NULL, &r, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.message, "open.md: the YAML front matter has no closing '---'"));
    free(p);
    p = ics_test_write_file(dir, "plain.md", "# a recipe card\nno front matter here\n");
    CU_ASSERT_EQUAL(ics_recipe_load_file(p, NULL, &r, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "plain.md: a .md recipe needs YAML front matter"));
    free(p);
    /* +++ delimiters work too */
    p = ics_test_write_file(
        dir, "plus.md",
        "+++\nmodifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 7}\n"
        "+++\ntext\n");
    CU_ASSERT_EQUAL(ics_recipe_load_file(p, NULL, &r, &err), ICS_OK);
    if (r) CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 7);
    ics_recipe_destroy(r);
    r = NULL;
    free(p);
    snprintf(path, sizeof path, "%s/nul.yaml", dir);
    FILE *f = fopen(path, "wb");
    fwrite("a: 1\n\0b: 2\n", 1, 11, f);
    fclose(f);
    CU_ASSERT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "nul.yaml: the recipe contains a NUL byte"));
    snprintf(path, sizeof path, "%s/dir.yaml", dir);
    mkdir(path, 0700);
    CU_ASSERT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "dir.yaml: cannot read recipe"));
    /* explain to a full device */
    r = load_ok("modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1}\n", NULL);
    f = fopen("/dev/full", "w");
    if (f) {
        CU_ASSERT_EQUAL(ics_recipe_explain(r, NULL, 0, f, &err), ICS_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot write the explanation"));
        fclose(f);
    }
    ics_recipe_destroy(r);
    ics_test_rmtree(dir);
    free(dir);
}

/* ---- staged recipes and compose --------------------------------------------- */

static ics_recipe *load_fixture(const char *name, const char *args)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/%s", ics_test_srcdir(), name);
    ics_error err;
    ics_error_clear(&err);
    ics_recipe *r = NULL;
    if (ics_recipe_load_file(path, args, &r, &err) != ICS_OK)
        fprintf(stderr, "\n  %s: %s\n", name, err.message);
    return r;
}

static void test_staged_load(void)
{
    ics_recipe *r = load_fixture("staged.yaml", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(ics_recipe_is_staged(r));
    CU_ASSERT_EQUAL(ics_recipe_stage_count(r), 2);
    CU_ASSERT_STRING_EQUAL(ics_recipe_stage_name(r, 1), "stage_1");
    /* stage_0 sees its own num_epochs (2), stage_1 the global one (4) */
    const ics_modifier *range0 = find_mod(r, ICS_MOD_EPOCH_RANGE, 0);
    CU_ASSERT_EQUAL(range0->stage, 0);
    CU_ASSERT_DOUBLE_EQUAL(range0->end_epoch, 2, 0);
    const ics_modifier *gmp = find_mod(r, ICS_MOD_GM_PRUNING, 0);
    CU_ASSERT_EQUAL(gmp->stage, 1);
    CU_ASSERT_DOUBLE_EQUAL(gmp->start_epoch, 2, 0);
    CU_ASSERT_DOUBLE_EQUAL(gmp->end_epoch, 5, 0);
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 6);
    ics_recipe_destroy(r);
    /* recipe_args reach stage variables as well as global ones */
    r = load_fixture("staged.yaml", "{\"num_epochs\": 6}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_EPOCH_RANGE, 0)->end_epoch, 6, 0);
    CU_ASSERT_DOUBLE_EQUAL(find_mod(r, ICS_MOD_GM_PRUNING, 0)->end_epoch, 7, 0);
    ics_recipe_destroy(r);
}

static const char *flat_a =
    "num_epochs: 10\n"
    "metadata: {owner: a, 'odd: key': \"line 1\\nline 2\\t'q' \\\"dq\\\"\"}\n"
    "modifiers:\n"
    "  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(num_epochs)}\n"
    "  - !SetLearningRateModifier {start_epoch: 0.5, learning_rate: 0.1}\n"
    "  - !ConstantPruningModifier {params: __ALL_PRUNABLE__}\n";
static const char *flat_b =
    "modifiers:\n"
    "  - !EpochRangeModifier {start_epoch: 0, end_epoch: 5}\n"
    "  - !QuantizationModifier {start_epoch: 1, freeze_bn_stats_epoch: 3, "
    "disable_quantization_observer_epoch: 4}\n"
    "  - !LearningRateModifier {lr_class: MultiStepLR, lr_kwargs: {milestones: [2, 4], gamma: "
    "0.1}, "
    "init_lr: 0.01, start_epoch: 0}\n"
    "  - !SetWeightDecayModifier {weight_decay: 0.0}\n"
    "  - !GMPruningModifier {init_sparsity: 0.05, final_sparsity: 0.9, start_epoch: 0.5, "
    "end_epoch: 3.5, update_frequency: 0.25, params: ['re:.*conv.*'], mask_type: [1, 4]}\n";

static void assert_same_schedule(const ics_recipe *a, const ics_recipe *b)
{
    CU_ASSERT_EQUAL_FATAL(ics_recipe_modifier_count(a), ics_recipe_modifier_count(b));
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(a), ics_recipe_max_epochs(b));
    CU_ASSERT_EQUAL(ics_recipe_stage_count(a), ics_recipe_stage_count(b));
    for (size_t i = 0; i < ics_recipe_modifier_count(a); i++) {
        const rmod *x = a->mods[i], *y = b->mods[i];
        CU_ASSERT_EQUAL(x->pub.type, y->pub.type);
        CU_ASSERT_EQUAL(x->pub.stage, y->pub.stage);
        CU_ASSERT_EQUAL(x->pub.start_epoch, y->pub.start_epoch);
        CU_ASSERT_EQUAL(x->pub.end_epoch, y->pub.end_epoch);
        CU_ASSERT_EQUAL(x->pub.update_frequency, y->pub.update_frequency);
        CU_ASSERT(rv_equal(&x->fields, &y->fields));
    }
}

/* A flat recipe written and loaded again: same schedule, same text. */
static void test_flat_reload(void)
{
    ics_recipe *a = load_fixture("all-modifiers.yaml", NULL), *b = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    ics_error err;
    char *yaml = ics_recipe_to_yaml(a, &err);
    CU_ASSERT(strncmp(yaml, "version: 1.1.0\n\nmodifiers:\n", 27) == 0);
    CU_ASSERT_EQUAL_FATAL(ics_recipe_load_string(yaml, "written", NULL, &b, &err), ICS_OK);
    assert_same_schedule(a, b);
    char *again = ics_recipe_to_yaml(b, &err);
    CU_ASSERT_STRING_EQUAL(yaml, again);
    free(again);
    free(yaml);
    ics_recipe_destroy(a);
    ics_recipe_destroy(b);
}

static void test_compose_and_reload(void)
{
    ics_error err;
    ics_recipe *a = load_ok(flat_a, NULL), *b = load_ok(flat_b, NULL), *c = NULL, *d = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_recipe_compose(a, b, &c, &err), ICS_OK);
    CU_ASSERT(ics_recipe_is_staged(c));
    CU_ASSERT_STRING_EQUAL(ics_recipe_stage_name(c, 0), "stage_0");
    CU_ASSERT_STRING_EQUAL(ics_recipe_stage_name(c, 1), "stage_1");
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(c), 15);
    /* base modifiers that never ended end at base's max_epochs */
    const ics_modifier *cp = find_mod(c, ICS_MOD_CONSTANT_PRUNING, 0);
    CU_ASSERT_DOUBLE_EQUAL(cp->end_epoch, 10, 0);
    CU_ASSERT_DOUBLE_EQUAL(find_mod(c, ICS_MOD_SET_LR, 0)->end_epoch, 10, 0);
    /* next modifiers shift by 10, absolute epochs inside them too */
    const ics_modifier *q = find_mod(c, ICS_MOD_QUANTIZATION, 0);
    CU_ASSERT_DOUBLE_EQUAL(q->start_epoch, 11, 0);
    CU_ASSERT_DOUBLE_EQUAL(q->end_epoch, -1, 0);
    CU_ASSERT_DOUBLE_EQUAL(q->u.quantization.freeze_bn_stats_epoch, 13, 0);
    CU_ASSERT_DOUBLE_EQUAL(q->u.quantization.disable_quantization_observer_epoch, 14, 0);
    const ics_modifier *lr = find_mod(c, ICS_MOD_LR, 0);
    CU_ASSERT_DOUBLE_EQUAL(lr->start_epoch, 10, 0);
    /* -1 ("from the start") becomes the start of its stage */
    CU_ASSERT_DOUBLE_EQUAL(find_mod(c, ICS_MOD_SET_WEIGHT_DECAY, 0)->start_epoch, 10, 0);
    CU_ASSERT_DOUBLE_EQUAL(lr->u.lr.milestones[0], 12, 0);
    const ics_modifier *gmp = find_mod(c, ICS_MOD_GM_PRUNING, 0);
    CU_ASSERT_DOUBLE_EQUAL(gmp->start_epoch, 10.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(gmp->end_epoch, 13.5, 0);
    CU_ASSERT_EQUAL(gmp->stage, 1);
    CU_ASSERT_EQUAL(gmp->u.pruning.block_rows, 1);

    char *yaml = ics_recipe_to_yaml(c, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(yaml);
    CU_ASSERT(strncmp(yaml, "version: 1.1.0\n", 15) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(yaml, "stage_1_modifiers:"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(yaml, "metadata: {owner: 'a', 'odd: key': \"line 1\\nline 2\\t'q' \\\"dq\\\"\"}"));
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_recipe_load_string(yaml, "composed", NULL, &d, &err), ICS_OK);
    if (!d) fprintf(stderr, "\n%s\n%s\n", err.message, yaml);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    assert_same_schedule(c, d);
    CU_ASSERT(rv_equal(&c->stages[0].metadata, &d->stages[0].metadata));
    CU_ASSERT_STRING_EQUAL(rv_map_get(&d->stages[0].metadata, "odd: key")->s,
                           "line 1\nline 2\t'q' \"dq\"");
    char *again = ics_recipe_to_yaml(d, &err);
    CU_ASSERT_STRING_EQUAL(yaml, again);
    free(again);

    /* staged base + flat next -> stage_<n+1>; and compose of the composed */
    ics_recipe *e = NULL, *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_recipe_compose(d, a, &e, &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_recipe_stage_name(e, 2), "stage_3");
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(e), 25);
    /* flat base + staged next -> pre_<first stage> */
    CU_ASSERT_EQUAL_FATAL(ics_recipe_compose(a, d, &f, &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_recipe_stage_name(f, 0), "pre_stage_0");
    ics_recipe_destroy(f);
    /* both staged with the same names: an error */
    f = NULL;
    CU_ASSERT_EQUAL(ics_recipe_compose(d, d, &f, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "must not share stage names; both have 'stage_0'"));
    CU_ASSERT_PTR_NULL(f);
    free(yaml);
    ics_recipe_destroy(a);
    ics_recipe_destroy(b);
    ics_recipe_destroy(c);
    ics_recipe_destroy(d);
    ics_recipe_destroy(e);
}

/* The written text as SparseML reads it: PyYAML's safe_load (YAML 1.1,
 * where "1e-05" would be a string) gives every field the same type and
 * value as icsparse has. Skips when Python has no yaml module. */
static const char *const pyyaml_dump =
    "import sys, json, yaml\n"
    "class L(yaml.SafeLoader): pass\n"
    "L.add_multi_constructor('!', lambda l, s, n: dict(l.construct_mapping(n, deep=True), "
    "__tag=s))\n"
    "doc = yaml.load(open(sys.argv[1]), Loader=L)\n"
    "assert doc.pop('version') == '1.1.0'\n"
    "for stage, body in doc.items():\n"
    "    for m in body[stage + '_modifiers']:\n"
    "        for k, v in m.items():\n"
    "            if k != '__tag': print(stage, m['__tag'], k, type(v).__name__, json.dumps(v))\n";

static const char *kind_name(const rv *v)
{
    switch (v->kind) {
    case RV_NULL:
        return "NoneType";
    case RV_BOOL:
        return "bool";
    case RV_INT:
        return "int";
    case RV_FLOAT:
        return "float";
    case RV_STRING:
        return "str";
    case RV_LIST:
        return "list";
    default:
        return "dict";
    }
}

static void check_against_pyyaml(const ics_recipe *c, const char *dir, const char *script)
{
    ics_error err;
    char *yaml = ics_recipe_to_yaml(c, &err);
    char *path = ics_test_write_file(dir, "composed.yaml", yaml);
    char command[8192];
    snprintf(command, sizeof command, "%s %s %s",
             getenv("PYTHON_TORCH") ? getenv("PYTHON_TORCH") : "/usr/bin/python3", script, path);
    char *output = NULL;
    int rc = ics_test_run(command, &output);
    if (rc != 0) fprintf(stderr, "\n  PyYAML: %s\n", output ? output : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* one line per field, in the order the text has them: stage by stage,
     * modifiers in schedule order, fields in schema order */
    char *line = output;
    size_t fields = 0;
    for (size_t s = 0; s < c->stage_count; s++)
        for (size_t i = 0; i < c->mod_count; i++) {
            const rmod *m = c->mods[i];
            if ((size_t)m->pub.stage != s) continue;
            for (size_t f = 0; f < m->fields.count; f++, fields++) {
                char want[512];
                snprintf(want, sizeof want, "%s %s %s %s ", c->stages[s].name, m->pub.type_name,
                         m->fields.keys[f], kind_name(&m->fields.items[f]));
                CU_ASSERT_PTR_NOT_NULL_FATAL(line);
                if (strncmp(line, want, strlen(want)) != 0) {
                    char *eol = strchr(line, '\n');
                    fprintf(stderr, "\n  want '%s...', PyYAML gave '%.*s'", want,
                            eol ? (int)(eol - line) : (int)strlen(line), line);
                    CU_FAIL("PyYAML reads another type");
                } else if (rv_is_number(&m->fields.items[f])) {
                    CU_ASSERT_EQUAL(strtod(line + strlen(want), NULL), m->fields.items[f].num);
                }
                line = strchr(line, '\n');
                if (line) line++;
            }
        }
    CU_ASSERT(fields > 10);
    CU_ASSERT(line == NULL || *line == '\0');
    free(output);
    free(path);
    free(yaml);
}

static void test_written_text_reads_the_same_in_pyyaml(void)
{
    const char *python = getenv("PYTHON_TORCH");
    char probe[512];
    snprintf(probe, sizeof probe, "%s -c 'import yaml' 2>/dev/null",
             python && python[0] ? python : "/usr/bin/python3");
    if (ics_test_run(probe, NULL) != 0) {
        fprintf(stderr, "\n  SKIP: no Python with PyYAML to read the written recipes\n");
        return;
    }
    char *dir = ics_test_tmpdir("pyyaml");
    char *script = ics_test_write_file(dir, "dump.py", pyyaml_dump);
    ics_recipe *a = load_fixture("all-modifiers.yaml", NULL),
               *b = load_fixture("staged.yaml", NULL);
    ics_recipe *c = NULL, *d = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_recipe_compose(a, b, &c, &err), ICS_OK);
    check_against_pyyaml(c, dir, script);
    char *up = upstream_dir();
    if (up) {
        char path[4096];
        snprintf(path, sizeof path, "%s/resnet50-imagenet-pruned-quant-moderate.yaml", up);
        ics_recipe *r = NULL;
        CU_ASSERT_EQUAL_FATAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_OK);
        CU_ASSERT_EQUAL_FATAL(ics_recipe_compose(r, a, &d, &err), ICS_OK);
        check_against_pyyaml(d, dir, script); /* lr_min 1.0e-05 is a float there */
        ics_recipe_destroy(r);
        free(up);
    }
    ics_recipe_destroy(a);
    ics_recipe_destroy(b);
    ics_recipe_destroy(c);
    ics_recipe_destroy(d);
    free(script);
    ics_test_rmtree(dir);
    free(dir);
}

/* ---- selectors ------------------------------------------------------------ */

/* torchvision resnet50 parameter names, generated the way torchvision
 * names them (stem, 4 layers of bottlenecks [3, 4, 6, 3], fc). */
typedef struct name_table {
    ics_param_info *params;
    char **names;
    size_t count;
} name_table;

static void add_param(name_table *t, const char *name, int prunable)
{
    t->names = realloc(t->names, (t->count + 1) * sizeof *t->names);
    t->params = realloc(t->params, (t->count + 1) * sizeof *t->params);
    t->names[t->count] = strdup(name);
    t->params[t->count].name = t->names[t->count];
    t->params[t->count].prunable = prunable;
    t->count++;
}

static void add_bn(name_table *t, const char *prefix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_param(t, name, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_param(t, name, 0);
}

static name_table resnet50_names(void)
{
    name_table t = {0};
    add_param(&t, "conv1.weight", 1);
    add_bn(&t, "bn1");
    const int blocks[4] = {3, 4, 6, 3};
    char name[256];
    for (int layer = 1; layer <= 4; layer++)
        for (int b = 0; b < blocks[layer - 1]; b++) {
            for (int c = 1; c <= 3; c++) {
                snprintf(name, sizeof name, "layer%d.%d.conv%d.weight", layer, b, c);
                add_param(&t, name, 1);
                snprintf(name, sizeof name, "layer%d.%d.bn%d", layer, b, c);
                add_bn(&t, name);
            }
            if (b == 0) {
                snprintf(name, sizeof name, "layer%d.%d.downsample.0.weight", layer, b);
                add_param(&t, name, 1);
                snprintf(name, sizeof name, "layer%d.%d.downsample.1", layer, b);
                add_bn(&t, name);
            }
        }
    add_param(&t, "fc.weight", 1);
    add_param(&t, "fc.bias", 0);
    return t;
}

static void free_names(name_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->names[i]);
    free(t->names);
    free(t->params);
}

static size_t select_count(const name_table *t, const char **sel, size_t n, ics_status *st,
                           ics_error *err)
{
    int lines[8] = {7, 7, 7, 7, 7, 7, 7, 7}, columns[8] = {3, 4, 5, 6, 7, 8, 9, 10};
    ics_name_list list = {n, sel, lines, columns};
    unsigned char *flags = calloc(t->count, 1);
    *st = ics_recipe_select(&list, t->params, t->count, flags, err);
    size_t count = 0;
    for (size_t i = 0; i < t->count; i++)
        count += flags[i];
    free(flags);
    return count;
}

static void test_selectors(void)
{
    name_table t = resnet50_names();
    CU_ASSERT_EQUAL(t.count, 161); /* torchvision resnet50: 161 trainable parameters */
    ics_error err;
    ics_status st;
    const char *all[] = {"__ALL__"};
    CU_ASSERT_EQUAL(select_count(&t, all, 1, &st, &err), 161);
    const char *prunable[] = {"__ALL_PRUNABLE__"};
    CU_ASSERT_EQUAL(select_count(&t, prunable, 1, &st, &err), 54); /* 53 convs + fc */
    const char *names[] = {"conv1.weight", "fc.weight"};
    CU_ASSERT_EQUAL(select_count(&t, names, 2, &st, &err), 2);
    const char *regex[] = {"re:layer[0-9]\\.\\d\\.conv2\\.weight"};
    CU_ASSERT_EQUAL(select_count(&t, regex, 1, &st, &err), 16);
    CU_ASSERT_EQUAL(st, ICS_OK);
    /* re.match: anchored at the start only, so ".*conv*" selects names
     * containing "con" (upstream's AC/DC recipe relies on it) */
    const char *prefix[] = {"re:.*conv*"};
    CU_ASSERT_EQUAL(select_count(&t, prefix, 1, &st, &err), 49); /* conv1 + 48 block convs */
    const char *start[] = {"re:conv"}; /* not a search: must match at the start */
    CU_ASSERT_EQUAL(select_count(&t, start, 1, &st, &err), 1);
    const char *group[] = {"re:(?:layer1|layer2)\\.0\\.downsample\\.0\\.weight"};
    CU_ASSERT_EQUAL(select_count(&t, group, 1, &st, &err), 2);
    const char *missing[] = {"fc.weight", "classifier.1.weight"};
    select_count(&t, missing, 2, &st, &err);
    CU_ASSERT_EQUAL(st, ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "line 7, column 4: params selector "
                                               "'classifier.1.weight' matches no parameter"));
    const char *bad[] = {"re:layer(1"};
    select_count(&t, bad, 1, &st, &err);
    CU_ASSERT_EQUAL(st, ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "bad regular expression in selector 're:layer(1'"));
    free_names(&t);
}

/* ---- schedule ------------------------------------------------------------- */

static void test_interpolate(void)
{
    /* against the formulas of sparseml/utils/helpers.py interpolate */
    for (double e = 2.0; e <= 12.0; e += 0.5) {
        double x = (e - 2.0) / 10.0;
        double lin = 0.05 + x * (0.85 - 0.05);
        double cub = 0.05 + (1 - pow(1 - x, 3)) * 0.8;
        double inv = 0.05 + (1 - pow(1 - x, 1.0 / 3.0)) * 0.8;
        if (x <= 0) lin = cub = inv = 0.05;
        if (x >= 1) lin = cub = inv = 0.85;
        CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(e, 2, 12, 0.05, 0.85, ICS_INTER_LINEAR), lin, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(e, 2, 12, 0.05, 0.85, ICS_INTER_CUBIC), cub, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(e, 2, 12, 0.05, 0.85, ICS_INTER_INVERSE_CUBIC), inv,
                               1e-12);
    }
    /* a few by hand: halfway, cubic = 1 - 0.125 = 0.875 of the way */
    CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(5, 0, 10, 0, 0.8, ICS_INTER_CUBIC), 0.7, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(5, 0, 10, 0, 0.8, ICS_INTER_LINEAR), 0.4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(5, 0, 10, 0, 0.8, ICS_INTER_INVERSE_CUBIC),
                           0.8 * (1 - cbrt(0.5)), 1e-12);
    /* past the end: final */
    CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(15, 0, 10, 0.1, 0.8, ICS_INTER_INVERSE_CUBIC), 0.8, 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_interpolate(15, 0, 10, 0.1, 0.8, ICS_INTER_CUBIC), 0.8, 0);
}

static void test_max_epochs_and_sparsity(void)
{
    ics_recipe *r = load_ok("modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 9.2}\n"
                            "  - !SetWeightDecayModifier {start_epoch: 10.5, weight_decay: 0}\n"
                            "  - !LearningRateModifier {lr_class: ExponentialLR, start_epoch: 0, "
                            "lr_kwargs: {gamma: 0.9}, init_lr: 0.1}\n",
                            NULL);
    if (r) CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 11); /* ceil(10.5) beats ceil(9.2) */
    ics_recipe_destroy(r);
    r = load_ok(
        "modifiers:\n  - !GMPruningModifier {init_sparsity: 0.1, final_sparsity: 0.9, "
        "start_epoch: 2, end_epoch: 6, update_frequency: 1, params: [a], inter_func: linear}\n",
        NULL);
    if (r) {
        const ics_modifier *m = ics_recipe_modifier(r, 0);
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 1.0), 0.1, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 4.0), 0.5, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 7.0), 0.9, 1e-12);
        CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 6);
    }
    ics_recipe_destroy(r);
}

static void test_acdc_phases(void)
{
    /* start 5, phases of 5 epochs, end 85: 16 phases, ends compressed: kept */
    ics_recipe *r =
        load_ok("modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 0.9, start_epoch: 5, "
                "end_epoch: 85, update_frequency: 5, params: [a]}\n",
                NULL);
    if (r) {
        const ics_modifier *m = ics_recipe_modifier(r, 0);
        CU_ASSERT_DOUBLE_EQUAL(m->end_epoch, 85, 0);
        CU_ASSERT_EQUAL(m->u.pruning.global_sparsity, 1);
        CU_ASSERT_EQUAL(m->u.pruning.momentum_buffer_reset, 1);
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 5.0), 0.0, 0);  /* decompressed */
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 10.0), 0.9, 0); /* compressed */
        CU_ASSERT_DOUBLE_EQUAL(ics_modifier_sparsity_at(m, 0, 84.9), 0.9, 0); /* last phase */
    }
    ics_recipe_destroy(r);
    /* start 0, phases of 5, end 87: 17 whole phases -> cut to 16, end 80 */
    r = load_ok("modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 0.9, start_epoch: 0, "
                "end_epoch: 87, update_frequency: 5, params: [a]}\n",
                NULL);
    if (r) CU_ASSERT_DOUBLE_EQUAL(ics_recipe_modifier(r, 0)->end_epoch, 80, 0);
    ics_recipe_destroy(r);
    load_fails("modifiers:\n  - !ACDCPruningModifier {compression_sparsity: 0.9, start_epoch: 0, "
               "end_epoch: 7, update_frequency: 5, params: [a]}\n",
               NULL, "holds no decompressed + compressed phase pair");
}

/* ---- the shared upstream recipes ------------------------------------------- */

static void test_upstream_recipes_load(void)
{
    char *dir = upstream_dir();
    if (!dir) {
        fprintf(stderr, "\n  SKIP: ../shared/recipes/upstream not found beside the source tree\n");
        return;
    }
    /* every recipe directly in the directory, with known facts for the
     * ones there today */
    static const struct {
        const char *file;
        int max_epochs;
        size_t modifiers;
    } known[] = {{"classification-transfer-learn-pruned-quantized.yaml", 10, 5},
                 {"mobilenet-acdc-pruning.yaml", 100, 5},
                 {"resnet50-imagenet-pruned-moderate.yaml", 90, 3},
                 {"resnet50-imagenet-pruned-quant-moderate.yaml", 135, 9}};
    size_t loaded = 0, matched = 0;
    DIR *d_up = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d_up);
    for (struct dirent *e; (e = readdir(d_up));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".yaml") && strcmp(dot, ".yml") && strcmp(dot, ".md"))) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ics_error err;
        ics_error_clear(&err);
        ics_recipe *r = NULL;
        ics_status st = ics_recipe_load_file(path, NULL, &r, &err);
        if (st != ICS_OK) fprintf(stderr, "\n  %s: %s\n", e->d_name, err.message);
        CU_ASSERT_EQUAL(st, ICS_OK);
        if (!r) continue;
        loaded++;
        int max_epochs = ics_recipe_max_epochs(r);
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(known[k].file, e->d_name) == 0) {
                matched++;
                CU_ASSERT_EQUAL(max_epochs, known[k].max_epochs);
                CU_ASSERT_EQUAL(ics_recipe_modifier_count(r), known[k].modifiers);
            }
        /* each composes with itself and loads again with the same schedule */
        ics_recipe *c = NULL, *d = NULL;
        CU_ASSERT_EQUAL(ics_recipe_compose(r, r, &c, &err), ICS_OK);
        if (c) {
            CU_ASSERT_EQUAL(ics_recipe_max_epochs(c), 2 * max_epochs);
            char *yaml = ics_recipe_to_yaml(c, &err);
            CU_ASSERT_EQUAL(ics_recipe_load_string(yaml, "composed", NULL, &d, &err), ICS_OK);
            if (d) assert_same_schedule(c, d);
            free(yaml);
        }
        ics_recipe_destroy(c);
        ics_recipe_destroy(d);
        ics_recipe_destroy(r);
    }
    closedir(d_up);
    CU_ASSERT(loaded >= 4);
    CU_ASSERT_EQUAL(matched, 4);
    /* the resnet50 pruned-quant recipe, field by field */
    char path[4096];
    snprintf(path, sizeof path, "%s/resnet50-imagenet-pruned-quant-moderate.yaml", dir);
    ics_error err;
    ics_recipe *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_recipe_load_file(path, "{\"num_epochs\": 140}", &r, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_recipe_max_epochs(r), 140); /* *num_epochs alias follows the override */
    const ics_modifier *g = find_mod(r, ICS_MOD_GM_PRUNING, 0);
    CU_ASSERT_EQUAL(g->u.pruning.mask_type, ICS_MASK_BLOCK);
    CU_ASSERT_EQUAL(g->u.pruning.block_cols, 4);
    CU_ASSERT_DOUBLE_EQUAL(g->update_frequency, 0.5, 0);
    const ics_modifier *cawr = find_mod(r, ICS_MOD_LR, 0);
    CU_ASSERT_EQUAL(cawr->u.lr.lr_class, ICS_LR_COSINE_WARM_RESTARTS);
    CU_ASSERT_DOUBLE_EQUAL(cawr->u.lr.cycle_epochs, 60, 0);
    CU_ASSERT_DOUBLE_EQUAL(cawr->u.lr.lr_min, 0.00001, 0);
    const ics_modifier *q = find_mod(r, ICS_MOD_QUANTIZATION, 0);
    CU_ASSERT_DOUBLE_EQUAL(q->start_epoch, 100, 0);
    CU_ASSERT_EQUAL(q->u.quantization.submodules.count, 2);
    ics_recipe_destroy(r);
    free(dir);
}

static void test_upstream_invalid_rejected(void)
{
    char *dir = upstream_dir();
    if (!dir) {
        fprintf(stderr, "\n  SKIP: ../shared/recipes/upstream not found beside the source tree\n");
        return;
    }
    char path[4096];
    ics_error err;
    ics_recipe *r = NULL;
    /* every file in invalid/ is rejected with an error that has a line */
    snprintf(path, sizeof path, "%s/invalid", dir);
    DIR *d = opendir(path);
    size_t rejected = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/invalid/%s", dir, e->d_name);
        ics_error_clear(&err);
        CU_ASSERT_NOT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_OK);
        CU_ASSERT_PTR_NULL(r);
        char with_line[4200];
        snprintf(with_line, sizeof with_line, "%s:", path);
        const char *after = strstr(err.message, with_line);
        CU_ASSERT(after && after[strlen(with_line)] >= '1' && after[strlen(with_line)] <= '9');
        rejected++;
    }
    if (d) closedir(d);
    CU_ASSERT(rejected >= 1);
    /* the one there today: the undefined alias, named, at its line */
    snprintf(path, sizeof path, "%s/invalid/mobilenet-imagenet-pruned-quant-moderate.yaml", dir);
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_recipe_load_file(path, NULL, &r, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.message, "mobilenet-imagenet-pruned-quant-moderate.yaml:47:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "undefined alias *pruning_recovery_end_lr"));
    free(dir);
}

/* ---- explain ------------------------------------------------------------------ */

static void test_explain(void)
{
    ics_recipe *r = load_fixture("staged.yaml", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    name_table t = resnet50_names();
    char *dir = ics_test_tmpdir("explain");
    char path[4096];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "w");
    ics_error err;
    CU_ASSERT_EQUAL(ics_recipe_explain(r, t.params, t.count, f, &err), ICS_OK);
    fclose(f);
    char *text = ics_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "layout: staged, 2 stages: stage_0 stage_1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "max_epochs: 6"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "GMPruningModifier (stage stage_1) (line 21)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "epochs: from 2 to 5"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "selects 54 of 161 parameters:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "      layer4.2.conv3.weight\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "    final_sparsity: 0.5\n"));
    free(text);
    ics_recipe_destroy(r);
    /* a selector that matches nothing in this model */
    r = load_ok("modifiers:\n  - !ConstantPruningModifier\n    params: ['classifier.weight']\n",
                NULL);
    f = fopen(path, "w");
    CU_ASSERT_EQUAL(ics_recipe_explain(r, t.params, t.count, f, &err), ICS_ERR_CONFIG);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message,
                                  "t.yaml: ConstantPruningModifier: line 3, column 14: "
                                  "params selector 'classifier.weight'"));
    ics_recipe_destroy(r);
    free_names(&t);
    ics_test_rmtree(dir);
    free(dir);
}

/* ---- every allocation failure is reported, nothing leaks ------------------- */

static void test_allocation_failures(void)
{
    ics_recipe *base = load_ok(flat_a, NULL);
    name_table t = resnet50_names();
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/recipes/staged.yaml", ics_test_srcdir());
    FILE *sink = fopen("/dev/null", "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sink);
    int failures = 0, done = 0;
    /* every checked allocation of load (string and file, recipe_args,
     * staged), compose, write and explain-with-selection fails once */
    for (long n = 1; n < 20000 && !done; n++) {
        ics_error err;
        ics_error_clear(&err);
        ics_recipe *r = NULL, *s = NULL, *c = NULL;
        ics_alloc_fail_after(n);
        ics_status st = ics_recipe_load_string(flat_b, "b", "{\"final_sparsity\": 0.8}", &r, &err);
        if (st == ICS_OK) st = ics_recipe_load_file(path, "num_epochs=3", &s, &err);
        if (st == ICS_OK) st = ics_recipe_compose(base, r, &c, &err);
        if (st == ICS_OK) st = ics_recipe_explain(c, t.params, t.count, sink, &err);
        if (st == ICS_OK) st = ics_recipe_explain(s, t.params, t.count, sink, &err);
        char *yaml = st == ICS_OK ? ics_recipe_to_yaml(c, &err) : NULL;
        ics_alloc_fail_after(0);
        ics_recipe_destroy(r);
        ics_recipe_destroy(s);
        ics_recipe_destroy(c);
        done = st == ICS_OK && yaml;
        free(yaml);
        if (st != ICS_OK) {
            failures++;
            if (st != ICS_ERR_NOMEM) fprintf(stderr, "\n  fail at %ld: %s\n", n, err.message);
            CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        }
    }
    CU_ASSERT(done);
    CU_ASSERT(failures > 100);
    fclose(sink);
    free_names(&t);
    ics_recipe_destroy(base);
}

int main(void)
{
    static const ics_test_case expr_cases[] = {
        {"operators with Python semantics", test_expr_operators},
        {"unary minus and precedence", test_expr_unary_minus_and_precedence},
        {"functions", test_expr_functions},
        {"errors name the token and position", test_expr_errors},
        {"eval() in recipes", test_eval_in_recipes},
        {"same values as Python's eval", test_expr_matches_python},
        {NULL, NULL}};
    static const ics_test_case load_cases[] = {
        {"variables in any order; cycles and unknowns", test_variables_any_order_and_errors},
        {"non-numeric variable used whole", test_non_numeric_variable_whole},
        {"recipe_args override anchors and aliases", test_recipe_args_override_anchors},
        {"schema errors with line and column", test_schema_errors},
        {"every other loader error", test_more_errors},
        {"YAML merge keys", test_merge_keys},
        {"log_types ignored, defaults filled", test_log_types_and_defaults},
        {"every modifier schema", test_all_modifiers_fixture},
        {".md front matter", test_markdown_front_matter},
        {"file errors", test_file_errors},
        {"staged recipes", test_staged_load},
        {"a flat recipe written and loaded again", test_flat_reload},
        {"compose and reload give the same schedule", test_compose_and_reload},
        {"written text reads the same in PyYAML", test_written_text_reads_the_same_in_pyyaml},
        {"allocation failures", test_allocation_failures},
        {NULL, NULL}};
    static const ics_test_case schedule_cases[] = {
        {"selectors", test_selectors},
        {"interpolate", test_interpolate},
        {"max_epochs and sparsity at an epoch", test_max_epochs_and_sparsity},
        {"AC/DC phases", test_acdc_phases},
        {"explain", test_explain},
        {NULL, NULL}};
    static const ics_test_case upstream_cases[] = {
        {"upstream recipes load, compose, reload", test_upstream_recipes_load},
        {"upstream invalid recipe rejected", test_upstream_invalid_rejected},
        {NULL, NULL}};
    ics_test_add_suite("recipe eval", expr_cases);
    ics_test_add_suite("recipe load", load_cases);
    ics_test_add_suite("recipe schedule", schedule_cases);
    ics_test_add_suite("recipe upstream", upstream_cases);
    return ics_test_main("test_recipe");
}
