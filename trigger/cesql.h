/*
 * cesql.h — CloudEvents SQL Expression Language (CESQL) 1.0.0 for trigger
 * filters: an expression is compiled once and then evaluated against many
 * events, without allocating for the common filters (comparisons, LIKE, IN,
 * EXISTS, AND/OR).
 *
 * The language, as this implementation reads the specification:
 *
 *   - Literals: 32-bit signed integers (an optional sign written right
 *     against the digits is part of the literal, so -2147483648 is valid; a
 *     literal outside the range is a parse error), TRUE and FALSE, strings in
 *     '...' or "...". Inside a string \' (in '...') or \" (in "...") stands
 *     for the quote; a backslash before any other character is kept as it is
 *     (both characters), and never ends the string: 'a\\' is the three
 *     characters a\\ with no quote. A doubled quote ('it''s') is not an
 *     escape: it is two adjacent literals, a parse error.
 *   - Attribute names: [a-z0-9]+ as in CloudEvents (the 20-character length
 *     is only a SHOULD NOT in CESQL 1.0.0, so longer names are accepted).
 *     Upper case is a parse error. Keywords (AND OR XOR NOT LIKE IN EXISTS
 *     TRUE FALSE) and function names are case-insensitive; a keyword is never
 *     an attribute name.
 *   - Precedence, tightest first (spec §3.6): function calls; NOT and unary
 *     minus; LIKE; EXISTS; IN; * / %; + -; = != <> < <= > >=; then AND, OR
 *     and XOR together at one level. Operators of one level group left to
 *     right, so "TRUE OR TRUE AND FALSE" is (TRUE OR TRUE) AND FALSE, which
 *     is FALSE (unlike SQL, where AND binds tighter). "NOT a = b" is
 *     (NOT a) = b. LIKE and IN apply to what is on their left in the order
 *     written. There is no unary plus.
 *   - The LIKE pattern must be a string literal (else a parse error): % is
 *     any run of characters, _ one character, \% and \_ the characters
 *     themselves; any other backslash is an ordinary character. Matching is
 *     by Unicode character and case-sensitive.
 *   - Functions: LENGTH, CONCAT (0+ args), CONCAT_WS (1+ args), LOWER, UPPER,
 *     TRIM, LEFT, RIGHT, SUBSTRING (2 or 3 args), ABS, INT, BOOL, STRING,
 *     IS_INT, IS_BOOL. All are built in, so an unknown name or a wrong number
 *     of arguments is found at compile time and is a parse error (the spec
 *     allows the check at compile time; it names the run-time form
 *     MissingFunctionError).
 *
 * Types and casts (spec §3.7): Integer, Boolean and String. An attribute of
 * CloudEvents type Integer is an Integer, Boolean a Boolean, anything else
 * (URI, timestamp, binary...) its canonical string. Operators cast their
 * operands to the types they take: arithmetic and < <= > >= to Integer, NOT
 * AND OR XOR to Boolean, LIKE's left side to String. = != <> cast the left
 * side to the type of the right side ('5' = 5 is true, TRUE = 'TRUE' is
 * false); IN casts each element to the type of the left side and stops at the
 * first equal one. String to Integer takes an optional sign and base-10
 * digits, nothing else; String to Boolean takes "true" or "false" in any case;
 * Integer to Boolean is "not 0"; Boolean to Integer is 1 or 0. A cast that
 * fails raises a CastError and gives 0, FALSE or "". INT, BOOL and STRING
 * cast explicitly; IS_INT(x) and IS_BOOL(x) tell whether INT(x) or BOOL(x)
 * would succeed, so they are TRUE for any Integer or Boolean and test the
 * text of a String.
 *
 * Errors during evaluation never stop it (the spec's "complete evaluation
 * mode"): the operation yields a value and the first error is reported.
 *   - A reference to an attribute the event lacks raises
 *     MissingAttributeError and the operator or function using it directly
 *     yields the zero value of its own result type: "missing = 2" is FALSE,
 *     "1 / missing" is 0 (not a MathError), "NOT missing" is FALSE, and an
 *     expression that is only an attribute reference is FALSE. EXISTS never
 *     raises it.
 *   - Division or remainder by 0 gives 0 and a MathError. Integer results
 *     outside 32 bits (+ - * /, unary minus, ABS) give the nearest bound
 *     (so ABS(-2147483648) is 2147483647, as the spec says) and a MathError.
 *   - LEFT/RIGHT with a negative count give the string unchanged, SUBSTRING
 *     with a position outside [-LENGTH, LENGTH] or a negative length gives "",
 *     both with a FunctionEvaluationError. SUBSTRING position 0 gives "".
 *   - Functions count Unicode characters, not bytes. TRIM removes Unicode
 *     White_Space characters at both ends. LOWER and UPPER change ASCII
 *     letters only: any other character is left as it is.
 *   - AND and OR short-circuit; an operand that is not evaluated raises
 *     nothing.
 *
 * Limits, for hostile input, each overridable at build time:
 *   - CESQL_MAX_TEXT bytes of text (a longer one fails at position 0);
 *   - CESQL_MAX_DEPTH: at most that many parentheses, calls, IN lists and
 *     prefix operators nested in one another, and an operator tree at most
 *     that deep, where a run of one precedence level ("a OR b OR c ...",
 *     "1 + 2 - 3 ...") counts once however long, and each NOT, unary minus,
 *     call, LIKE and IN counts one (parse errors);
 *   - CESQL_EVAL_MAX_BYTES of strings built by one evaluation (CONCAT,
 *     LOWER, numbers as text...), and CESQL_LIKE_MAX_STEPS steps of LIKE
 *     matching (one per character tried; a usual pattern takes about one per
 *     character of the value, a hostile one up to the value's length times
 *     its own); past either the evaluation raises CESQL_ERR_GENERIC, so the
 *     event does not match.
 *
 * Threads: a compiled expression is immutable and may be evaluated by any
 * number of threads at once; each evaluation uses only its own stack and
 * memory. The event must not change during an evaluation.
 */
#ifndef OUTPOST_TRIGGER_CESQL_H
#define OUTPOST_TRIGGER_CESQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ce.h"

#ifndef CESQL_MAX_TEXT
#define CESQL_MAX_TEXT 4096 /* bytes of expression text */
#endif
#ifndef CESQL_MAX_DEPTH
#define CESQL_MAX_DEPTH 64 /* nesting and operator-tree depth */
#endif
#ifndef CESQL_EVAL_MAX_BYTES
#define CESQL_EVAL_MAX_BYTES (4u << 20) /* bytes of strings one evaluation may build */
#endif
#ifndef CESQL_LIKE_MAX_STEPS
#define CESQL_LIKE_MAX_STEPS (1u << 22) /* LIKE matching steps in one evaluation */
#endif

/* A compiled expression. Opaque and immutable. */
typedef struct cesql_expr cesql_expr;

/* Why an expression did not compile. */
typedef struct cesql_err {
  int code;      /* -EINVAL: not a valid expression; -ENOMEM: out of memory */
  int position;  /* 1-based character (not byte) where the error was found;
                    length + 1 at the end of the text; 0 for the whole text */
  char msg[200]; /* what is wrong, in words */
} cesql_err;

/* The types of CESQL values. */
typedef enum cesql_type {
  CESQL_INT = 0,
  CESQL_BOOL,
  CESQL_STRING,
} cesql_type;

/* The errors an evaluation can raise (the spec's error types; ParseError and
 * MissingFunctionError are compile-time errors here). */
typedef enum cesql_error_kind {
  CESQL_OK = 0,
  CESQL_ERR_MISSING_ATTRIBUTE, /* an attribute the event lacks */
  CESQL_ERR_CAST,              /* a cast that failed: 'abc' + 1 */
  CESQL_ERR_MATH,              /* division by 0, 32-bit overflow */
  CESQL_ERR_FUNCTION,          /* bad function argument: LEFT('a', -1) */
  CESQL_ERR_GENERIC,           /* CESQL_EVAL_MAX_BYTES or CESQL_LIKE_MAX_STEPS exceeded */
} cesql_error_kind;

/* A value, filled by cesql_expr_eval. Only the field of `type` is set; s is
 * a NUL-terminated copy (len bytes without the NUL) owned by the value and
 * freed by cesql_value_cleanup, NULL for other types. */
typedef struct cesql_value {
  cesql_type type;
  int32_t i;
  bool b;
  char *s;
  size_t len;
} cesql_value;

/* Compiles text (len bytes of UTF-8, need not be NUL-terminated). Returns a
 * new expression owned by the caller (free it with cesql_expr_free), or NULL
 * with *err filled when err is non-NULL: a parse error, a limit, invalid
 * UTF-8, or no memory. */
cesql_expr *cesql_expr_compile(const char *text, size_t len, cesql_err *err);

/* Frees expr. cesql_expr_free(NULL) does nothing. */
void cesql_expr_free(cesql_expr *expr);

/* The filter decision: true only when expr evaluates on ev to the Boolean
 * TRUE with no error raised (spec §1.2: any error, or a result that is not a
 * Boolean, means the event does not pass). Stops at the first error. False
 * also when out of memory. */
bool cesql_expr_match(const cesql_expr *expr, const ce_event *ev);

/* Evaluates expr on ev to completion. Fills *out with the value (release it
 * with cesql_value_cleanup) and *kind with the first error raised, or
 * CESQL_OK. Returns 0, or -ENOMEM (then *out holds no string to free). */
int cesql_expr_eval(const cesql_expr *expr, const ce_event *ev, cesql_value *out,
                    cesql_error_kind *kind);

/* Frees the string of a value filled by cesql_expr_eval and clears it. */
void cesql_value_cleanup(cesql_value *v);

/* For indexing triggers: when expr can only match events whose attribute
 * *attr has the canonical string value *value — that is, when the whole
 * expression is `attr = 'literal'` with an attribute on the left and a string
 * literal on the right, or a chain of ANDs one of whose operands is (the
 * first such operand is reported) — sets *attr and *value (NUL-terminated,
 * owned by expr, valid until it is freed) and returns 1. Otherwise returns 0:
 * an OR or XOR anywhere in the top-level chain, NOT, a literal holding a NUL
 * byte, or the literal on the left. Integer and Boolean attributes qualify
 * too: `=` casts them to the literal's String type, which gives their
 * canonical form. */
int cesql_expr_required_exact(const cesql_expr *expr, const char **attr, const char **value);

#endif
