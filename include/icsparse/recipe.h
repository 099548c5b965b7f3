/*
 * icsparse/recipe.h: SparseML recipes, loaded, validated, composed and
 * printed.
 *
 * A recipe is YAML (or the YAML front matter of a .md file) in SparseML's
 * grammar: variables, eval() arithmetic over them, anchors and aliases,
 * `*modifiers*` lists of `!ModifierName` mappings, and staged recipes
 * (`stage_N:` mappings with their own variables and modifier lists).
 * Loading evaluates every expression, applies recipe_args overrides,
 * checks every modifier against its schema (SparseML's field names and
 * defaults) and gives typed modifier records the training loop uses.
 * Every error names the source, line and column. docs/RECIPES.md has the
 * grammar and each place where icsparse deliberately differs from SparseML.
 */
#ifndef ICSPARSE_RECIPE_H
#define ICSPARSE_RECIPE_H

#include <stddef.h>
#include <stdio.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ics_recipe ics_recipe;

typedef enum ics_modifier_type {
    ICS_MOD_EPOCH_RANGE = 0,
    ICS_MOD_LR_FUNCTION,      /* LearningRateFunctionModifier */
    ICS_MOD_LR,               /* LearningRateModifier (torch.optim.lr_scheduler classes) */
    ICS_MOD_SET_LR,           /* SetLearningRateModifier */
    ICS_MOD_SET_WEIGHT_DECAY, /* SetWeightDecayModifier */
    ICS_MOD_GM_PRUNING,       /* GMPruningModifier */
    ICS_MOD_MAGNITUDE_PRUNING,
    ICS_MOD_GLOBAL_MAGNITUDE_PRUNING,
    ICS_MOD_ACDC_PRUNING,
    ICS_MOD_CONSTANT_PRUNING,
    ICS_MOD_QUANTIZATION,
    ICS_MOD_TRAINABLE_PARAMS,
    ICS_MOD_DISTILLATION,
    ICS_MOD_TYPE_COUNT
} ics_modifier_type;

/* A list of strings from the recipe (parameter selectors, module names),
 * each with the line and column it came from (0 when generated). */
typedef struct ics_name_list {
    size_t count;
    const char **names;
    const int *lines;
    const int *columns;
} ics_name_list;

typedef enum ics_inter_func {
    ICS_INTER_LINEAR = 0,
    ICS_INTER_CUBIC,
    ICS_INTER_INVERSE_CUBIC
} ics_inter_func;

typedef enum ics_mask_type {
    ICS_MASK_UNSTRUCTURED = 0,
    ICS_MASK_CHANNEL,
    ICS_MASK_FILTER,
    ICS_MASK_BLOCK, /* block_rows x block_cols blocks; "block4" is 1x4 */
    ICS_MASK_NM     /* keep mask_n of every mask_m; "tensorrt" is 2:4 */
} ics_mask_type;

/* One final-sparsity group of a pruning modifier. A scalar final_sparsity
 * gives one group holding the modifier's params. */
typedef struct ics_sparsity_group {
    double sparsity;
    ics_name_list params;
} ics_sparsity_group;

typedef struct ics_pruning_spec {
    double init_sparsity; /* ignored when init_from_param */
    int init_from_param;  /* init_sparsity: __FROM_PARAM__ (current zeros) */
    size_t group_count;
    const ics_sparsity_group *groups;
    ics_name_list params; /* union of all groups' selectors */
    int leave_enabled;
    ics_inter_func inter_func;
    ics_mask_type mask_type;
    int mask_n, mask_m;         /* ICS_MASK_NM */
    int block_rows, block_cols; /* ICS_MASK_BLOCK */
    int global_sparsity;
    /* ACDC only */
    double compression_sparsity;
    int momentum_buffer_reset;
} ics_pruning_spec;

typedef enum ics_lr_func {
    ICS_LR_FUNC_LINEAR = 0,
    ICS_LR_FUNC_COSINE,
    ICS_LR_FUNC_CYCLIC_LINEAR
} ics_lr_func;

typedef struct ics_lr_function_spec {
    ics_lr_func lr_func;
    double init_lr, final_lr;
    double cycle_epochs; /* cyclic_linear only, else 0 */
} ics_lr_function_spec;

typedef enum ics_lr_class {
    ICS_LR_STEP = 0,
    ICS_LR_MULTI_STEP,
    ICS_LR_EXPONENTIAL,
    ICS_LR_COSINE_WARM_RESTARTS
} ics_lr_class;

typedef struct ics_lr_spec {
    ics_lr_class lr_class;
    double init_lr;
    double step_size;       /* StepLR, epochs */
    double gamma;           /* StepLR, MultiStepLR, ExponentialLR */
    size_t milestone_count; /* MultiStepLR: absolute epochs */
    const double *milestones;
    double lr_min;       /* CosineAnnealingWarmRestarts (eta_min) */
    double cycle_epochs; /* CosineAnnealingWarmRestarts (T_0, epochs) */
    int cycle_mult;      /* CosineAnnealingWarmRestarts (T_mult) */
} ics_lr_spec;

typedef struct ics_quantization_spec {
    int has_submodules; /* 0: the whole model */
    ics_name_list submodules;
    const char *model_fuse_fn_name;             /* NULL when not given */
    double disable_quantization_observer_epoch; /* -1: never */
    double freeze_bn_stats_epoch;               /* -1: never */
    int quantize_embeddings;
    int quantize_linear_activations;
    int quantize_conv_activations;
    int reduce_range;
    int num_bits, activation_bits, weight_bits;
    int exclude_batchnorm;
    ics_name_list exclude_module_types; /* `exclude_module_types` and `ignore` together */
    int num_calibration_steps;          /* -1: not given */
    int tensorrt;
} ics_quantization_spec;

typedef struct ics_trainable_spec {
    ics_name_list params;
    int trainable;
    int params_strict;
} ics_trainable_spec;

typedef struct ics_distillation_spec {
    double hardness; /* loss = (1-h)*task + h*distill */
    double temperature;
    int has_output_keys;
    ics_name_list distill_output_keys;
} ics_distillation_spec;

/* One modifier, evaluated and validated. */
typedef struct ics_modifier {
    ics_modifier_type type;
    const char *type_name;   /* "GMPruningModifier" */
    double start_epoch;      /* -1: from the start */
    double end_epoch;        /* -1: never ends */
    double update_frequency; /* -1: every step (where the modifier has one) */
    int stage;               /* index into the stages (0 for a flat recipe) */
    int line, column;        /* of the !Tag in the source (0 when generated) */
    union {
        ics_lr_function_spec lr_function;
        ics_lr_spec lr;
        double learning_rate;     /* SetLearningRateModifier */
        double weight_decay;      /* SetWeightDecayModifier */
        ics_pruning_spec pruning; /* GM, Magnitude, GlobalMagnitude, ACDC, Constant */
        ics_quantization_spec quantization;
        ics_trainable_spec trainable;
        ics_distillation_spec distillation;
    } u;
} ics_modifier;

/* Loads a recipe file (.yaml/.yml, or .md with YAML front matter between
 * `---` or `+++` lines). recipe_args (JSON or YAML mapping text, or NULL)
 * overrides variables before evaluation. On success *out owns everything. */
ics_status ics_recipe_load_file(const char *path, const char *recipe_args, ics_recipe **out,
                                ics_error *err);
/* Same for recipe text; source_name appears in error messages. */
ics_status ics_recipe_load_string(const char *text, const char *source_name,
                                  const char *recipe_args, ics_recipe **out, ics_error *err);
void ics_recipe_destroy(ics_recipe *recipe);

/* Modifiers in schedule order (SparseML's: end_epoch with -1 last, then
 * start_epoch, then type name, then source order). */
size_t ics_recipe_modifier_count(const ics_recipe *recipe);
const ics_modifier *ics_recipe_modifier(const ics_recipe *recipe, size_t index);
/* Stages: a flat recipe has one stage named NULL. */
size_t ics_recipe_stage_count(const ics_recipe *recipe);
const char *ics_recipe_stage_name(const ics_recipe *recipe, size_t index);
int ics_recipe_is_staged(const ics_recipe *recipe);

/* max over modifiers of ceil(start_epoch) and ceil(end_epoch), values > -1;
 * 0 when there are none. */
int ics_recipe_max_epochs(const ics_recipe *recipe);

/* SparseML's interpolate (sparseml/utils/helpers.py): x = (epoch-start) /
 * (end-start); y = x, 1-(1-x)^3 or 1-(1-x)^(1/3); y <= eps -> init,
 * y >= 1-eps -> final, else init + y*(final-init). */
double ics_interpolate(double epoch, double start, double end, double init, double final,
                       ics_inter_func func);

/* Sparsity a gradual pruning modifier applies at `epoch` to group g:
 * interpolate for GM/Magnitude/Global, the AC/DC phase value for ACDC
 * (0 in decompressed phases, compression_sparsity in compressed ones). */
double ics_modifier_sparsity_at(const ics_modifier *mod, size_t group, double epoch);

/* Composes two recipes into a staged one (SparseML's compose_staged): the
 * next recipe's epochs are shifted by base's max_epochs, base modifiers
 * that never end get end_epoch = base's max_epochs. Stage names: both flat
 * -> stage_0, stage_1; staged base + flat next -> stage_<nbase+1>; flat
 * base + staged next -> pre_<next's first stage>. Shared names are an
 * error. */
ics_status ics_recipe_compose(const ics_recipe *base, const ics_recipe *next, ics_recipe **out,
                              ics_error *err);

/* The recipe as YAML (`version: 1.1.0`, evaluated values, every field with
 * its effective value); loading it again gives the same schedule. Returns
 * malloc'd text, NULL with err set on allocation failure. */
char *ics_recipe_to_yaml(const ics_recipe *recipe, ics_error *err);

/* A model parameter as the selectors see it. */
typedef struct ics_param_info {
    const char *name; /* torchvision state_dict name: "layer1.0.conv1.weight" */
    int prunable;     /* weight of a Conv or Linear layer (__ALL_PRUNABLE__) */
} ics_param_info;

/* Resolves selectors against params: exact names, "re:REGEX" (anchored at
 * the start like Python's re.match), "__ALL__", "__ALL_PRUNABLE__".
 * selected[i] is set to 1 for each selected param (others untouched). A
 * selector that selects nothing is an error naming it and its line. */
ics_status ics_recipe_select(const ics_name_list *selectors, const ics_param_info *params,
                             size_t param_count, unsigned char *selected, ics_error *err);

/* Writes a normalized summary: stages, modifiers in schedule order with
 * their epoch ranges and evaluated fields, max_epochs and, when params is
 * not NULL, the parameters each modifier selects. */
ics_status ics_recipe_explain(const ics_recipe *recipe, const ics_param_info *params,
                              size_t param_count, FILE *out, ics_error *err);

#ifdef __cplusplus
}
#endif
#endif
