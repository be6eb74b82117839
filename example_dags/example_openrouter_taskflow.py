"""TaskFlow: ``@task.openrouter`` turns a function that returns a prompt into a typed LLM step.

``classify`` is mapped over the reviews (``.expand()``): one chat completion each, each answer validated into
``ReviewLabel``. ``headline`` runs once over all of them. ``report`` receives the instances themselves.
Connection: ``openrouter_default``.
"""

from __future__ import annotations

from typing import Literal

from airflow.sdk import dag, task
from pydantic import BaseModel

REVIEWS = [
    "Setup took two minutes and it has run every night since. Love it.",
    "The export crashed twice and support never answered.",
    "Does the job. The dashboard could be faster.",
]


class ReviewLabel(BaseModel):
    sentiment: Literal["positive", "negative", "mixed"]
    topic: str


class Headline(BaseModel):
    headline: str
    reviews_read: int


@dag(schedule=None, catchup=False, tags=["openrouter", "example", "taskflow"])
def example_openrouter_taskflow() -> None:
    @task.openrouter(
        model="openai/gpt-4o-mini",
        output_type=ReviewLabel,
        system_prompt="Label the product review.",
        max_tokens=200,
        temperature=0,
    )
    def classify(review: str) -> str:
        return f"Review: {review}"

    @task.openrouter(model="openai/gpt-4o-mini", output_type=Headline, max_tokens=200)
    def headline(reviews: list[str]) -> list[dict[str, str]]:
        joined = "\n".join(f"- {review}" for review in reviews)
        return [
            {"role": "system", "content": "Write one headline that sums up these product reviews."},
            {"role": "user", "content": joined},
        ]

    @task
    def report(labels: list[ReviewLabel], summary: Headline) -> None:
        for review, label in zip(REVIEWS, labels, strict=True):
            print(f"{type(label).__name__}: {label.sentiment:>8} | {label.topic} | {review}")
        print(f"headline ({type(summary).__name__}): {summary.headline}")

    report(classify.expand(review=REVIEWS), headline(REVIEWS))


example_openrouter_taskflow()
