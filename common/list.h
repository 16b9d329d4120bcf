/*
 * The intrusive doubly-linked list of the code base (header-only, as libuv's QUEUE): a list is a
 * circular chain through an acr_list_t head; an element embeds an acr_list_t node and is recovered
 * with acr_list_entry (container_of). Nothing is allocated; insertion and removal are O(1).
 *
 * A node that is in no list points to itself (acr_list_init, or after acr_list_remove), so
 * acr_list_linked() tells whether it is in one. A zeroed node must be initialised before use.
 */
#ifndef ACR_LIST_H
#define ACR_LIST_H

#include "common/util.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct acr_list {
    struct acr_list *prev, *next;
} acr_list_t;

/** The element of type @type whose member @member is the node @node. */
#define acr_list_entry(node, type, member) acr_container_of(node, type, member)

/** Makes @l an empty list, or an unlinked node. */
static inline void acr_list_init(acr_list_t *l)
{
    l->prev = l->next = l;
}

static inline bool acr_list_empty(const acr_list_t *head)
{
    return head->next == head;
}

/** Whether the node @n is in a list. */
static inline bool acr_list_linked(const acr_list_t *n)
{
    return n->next != n;
}

/** First / last node of @head, or NULL when it is empty. */
static inline acr_list_t *acr_list_first(const acr_list_t *head)
{
    return acr_list_empty(head) ? NULL : head->next;
}

static inline acr_list_t *acr_list_last(const acr_list_t *head)
{
    return acr_list_empty(head) ? NULL : head->prev;
}

/** Appends the unlinked node @n at the end of @head. */
static inline void acr_list_push_back(acr_list_t *head, acr_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/** Unlinks @n from its list (no-op for an unlinked node); @n is then unlinked. */
static inline void acr_list_remove(acr_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    acr_list_init(n);
}

#endif
