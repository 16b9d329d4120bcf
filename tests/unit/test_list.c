/*
 * Unit tests of the intrusive list (common/list.h): order, removal from any position, the
 * linked/unlinked state of nodes, and the element recovered from its node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/list.h"

typedef struct item {
    int id;
    acr_list_t node;
} item_t;

static int id_of(acr_list_t *n)
{
    return acr_list_entry(n, item_t, node)->id;
}

/* Writes the ids of @head's elements, first to last and last to first, into @fwd / @back. */
static size_t ids(const acr_list_t *head, int *fwd, int *back, size_t max)
{
    size_t n = 0;
    for (acr_list_t *p = head->next; p != head && n < max; p = p->next) fwd[n++] = id_of(p);
    size_t m = 0;
    for (acr_list_t *p = head->prev; p != head && m < max; p = p->prev) back[m++] = id_of(p);
    assert_int_equal(n, m);
    return n;
}

static void test_order_and_removal(void **state)
{
    (void)state;
    acr_list_t head;
    item_t it[4];
    int fwd[8], back[8];
    acr_list_init(&head);
    assert_true(acr_list_empty(&head));
    assert_null(acr_list_first(&head));
    assert_null(acr_list_last(&head));
    for (int i = 0; i < 4; i++) {
        it[i].id = i;
        acr_list_init(&it[i].node);
        assert_false(acr_list_linked(&it[i].node));
        acr_list_push_back(&head, &it[i].node);
        assert_true(acr_list_linked(&it[i].node));
    }
    assert_int_equal(ids(&head, fwd, back, 8), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fwd[i], i);
        assert_int_equal(back[i], 3 - i);
    }
    assert_int_equal(id_of(acr_list_first(&head)), 0);
    assert_int_equal(id_of(acr_list_last(&head)), 3);

    acr_list_remove(&it[1].node); /* middle */
    assert_false(acr_list_linked(&it[1].node));
    acr_list_remove(&it[1].node); /* an unlinked node: no-op */
    acr_list_remove(&it[3].node); /* last */
    assert_int_equal(ids(&head, fwd, back, 8), 2);
    assert_int_equal(fwd[0], 0);
    assert_int_equal(fwd[1], 2);
    assert_int_equal(back[0], 2);
    assert_int_equal(back[1], 0);

    acr_list_push_back(&head, &it[3].node); /* a removed node can be linked again */
    assert_int_equal(id_of(acr_list_last(&head)), 3);
    acr_list_remove(&it[0].node); /* first */
    acr_list_remove(&it[2].node);
    acr_list_remove(&it[3].node);
    assert_true(acr_list_empty(&head));
    assert_int_equal(ids(&head, fwd, back, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_removal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
