/*
 * A recipe back to YAML text, as SparseML's manager writes it (`version:
 * 1.1.0`, then `modifiers:` or one mapping per stage holding
 * `<stage>_modifiers`), with every value evaluated and every field at its
 * effective value (defaults included), so the text alone gives back the
 * same schedule when loaded again.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void recipe_write_fields(rbuf *b, const rmod *m, const char *indent)
{
    for (size_t i = 0; i < m->fields.count; i++) {
        rbuf_printf(b, "%s%s: ", indent, m->fields.keys[i]);
        rbuf_value(b, &m->fields.items[i]);
        rbuf_printf(b, "\n");
    }
}

static void write_modifiers(rbuf *b, const ics_recipe *r, int stage, const char *indent)
{
    char field_indent[32];
    snprintf(field_indent, sizeof field_indent, "%s    ", indent);
    for (size_t i = 0; i < r->mod_count; i++) {
        const rmod *m = r->mods[i];
        if (m->pub.stage != stage) continue;
        rbuf_printf(b, "%s  - !%s\n", indent, m->pub.type_name);
        recipe_write_fields(b, m, field_indent);
        rbuf_printf(b, "\n");
    }
}

char *ics_recipe_to_yaml(const ics_recipe *r, ics_error *err)
{
    rbuf b = {0};
    rbuf_printf(&b, "version: 1.1.0\n\n");
    if (r->metadata.kind != RV_NULL) {
        rbuf_printf(&b, "metadata: ");
        rbuf_value(&b, &r->metadata);
        rbuf_printf(&b, "\n\n");
    }
    if (!r->staged) {
        rbuf_printf(&b, "modifiers:\n");
        write_modifiers(&b, r, 0, "");
    } else {
        for (size_t s = 0; s < r->stage_count; s++) {
            rbuf_printf(&b, "%s:\n", r->stages[s].name);
            if (r->stages[s].metadata.kind != RV_NULL) {
                rbuf_printf(&b, "  metadata: ");
                rbuf_value(&b, &r->stages[s].metadata);
                rbuf_printf(&b, "\n");
            }
            rbuf_printf(&b, "  %s_modifiers:\n", r->stages[s].name);
            write_modifiers(&b, r, (int)s, "  ");
        }
    }
    if (b.failed || !b.data) {
        free(b.data);
        ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory writing recipe %s as YAML", r->source);
        return NULL;
    }
    return b.data;
}
