"""Which text of a row the text filters read, chosen the same way by every reader.

The `quality` and `decontaminate` stages and `synthmix quality train` must see the same text
for the same row, or a classifier would be trained on one text and applied to another.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError

# Between instruction and answer: a paragraph break, so neither runs into the other's words.
PAIR_SEPARATOR = "\n\n"


def choose_text_source(available: Sequence[str], text_column: str | None) -> str | None:
    """The configured column; else None for the instruction-answer pair when the rows have both;
    else `text` (seed-only jobs). Raises ValueError naming the columns when neither is there."""
    if text_column is not None:
        if text_column not in available:
            raise ValueError(f"text_column {text_column!r} is not a column of the rows ({', '.join(available)}); name one of them")
        return text_column
    if contracts.INSTRUCTION in available and contracts.ANSWER in available:
        return None
    if contracts.TEXT in available:
        return contracts.TEXT
    raise ValueError(
        f"the rows have neither {contracts.INSTRUCTION!r} and {contracts.ANSWER!r} nor {contracts.TEXT!r} "
        f"(they have {', '.join(available)}); set text_column to the column to read"
    )


def check_text_source(schema: pa.Schema | None, text_column: str | None, stage_name: str) -> None:
    """Fail on the driver, before any batch runs, when a stage's input lacks the text it reads."""
    try:
        choose_text_source(schema.names if schema is not None else [], text_column)
    except ValueError as error:
        raise ConfigError(f"stage '{stage_name}': {error}") from None


def pair_texts(instructions: pa.Array | pa.ChunkedArray, answers: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Instruction, a paragraph break, answer; a null side counts as empty."""
    joined = pc.binary_join_element_wise(pc.fill_null(instructions, ""), pc.fill_null(answers, ""), PAIR_SEPARATOR)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def row_texts(table: pa.Table, text_column: str | None) -> pa.Array:
    """The text of each row, per `choose_text_source`; nulls become empty strings."""
    source = choose_text_source(table.column_names, text_column)
    if source is None:
        return pair_texts(table[contracts.INSTRUCTION], table[contracts.ANSWER])
    return pc.fill_null(table[source].cast(pa.string()), "").combine_chunks()
