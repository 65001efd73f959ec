"""A small built-in generator of conversational sentences, for filling benchmark stores.

The benchmark needs text whose term statistics look like chat between people
(a long tail of names, places and things over a core of everyday words), not
random tokens: recall cost depends on posting-list lengths, so a tiny
vocabulary would make every query touch most of the store, and random strings
would make every query nearly free. The generator is deterministic for a seed
and ships with the package, so no data file is needed.
"""

from __future__ import annotations

import random

NAMES = """
Caroline Melanie Jon Gina John Maria Joanna Nate Tim Audrey Andrew James Evan Sam Calvin Dave
Jolene Deborah Jade Priya Omar Lena Marcus Sofia Ravi Hannah Lucas Chloe Mateo Aisha Ben Nora
Felix Ines Tariq Yuki Elena Diego Grace Hugo Maya Oscar Leila Theo Zara Ivan Rosa Kofi Mila
""".split()

RELATIONS = [
    "sister", "brother", "mom", "dad", "grandma", "grandpa", "cousin", "aunt", "uncle", "neighbor",
    "roommate", "coworker", "boss", "best friend", "girlfriend", "boyfriend", "husband", "wife",
    "son", "daughter", "nephew", "niece", "mentor", "teammate", "old classmate", "yoga teacher",
]

ACTIVITIES = """
hiking running swimming painting pottery baking cooking gardening camping climbing cycling
surfing skiing knitting reading writing journaling photography dancing singing drumming
volunteering fishing kayaking sailing chess yoga meditation boxing tennis basketball soccer
volleyball skateboarding woodworking sculpting calligraphy birdwatching stargazing sewing
crocheting coding blogging podcasting vlogging composting beekeeping rowing archery fencing
bouldering snowboarding karaoke improv poetry origami scrapbooking thrifting foraging
""".split()

PLACES = """
beach lake park museum library cafe bakery gym studio mountains forest farm market mall
airport stadium theater cinema zoo aquarium campground vineyard island harbor river canyon
desert cathedral castle gallery bookstore pub diner temple village downtown countryside
""".split() + [
    "the community center", "the animal shelter", "the LGBTQ support group", "the art fair",
    "the farmers market", "the music festival", "the conference in Boston", "the trail near home",
    "the new pizza place", "my old school", "the hospital", "the car show", "the food bank",
    "Paris", "Tokyo", "Lisbon", "Chicago", "Seattle", "Barcelona", "Nairobi", "Toronto",
    "Sweden", "Canada", "Mexico", "Italy", "Peru", "Iceland", "Vietnam", "Morocco",
]

THINGS = """
guitar violin piano camera laptop bike kayak tent backpack journal sketchbook telescope
puppy kitten parrot hamster turtle sneakers jacket necklace bracelet painting sculpture
vase mug quilt scarf cookbook novel album poster trophy medal certificate ticket recipe
plant bonsai aquarium drone skateboard surfboard easel canvas notebook lamp rug
""".split() + [
    "a handmade bowl", "a vintage record player", "a rainbow flag", "a signed jersey",
    "a homemade pie", "a family photo album", "a new pair of running shoes", "a watercolor set",
]

FEELINGS = """
happy excited nervous proud grateful relieved exhausted inspired anxious thrilled calm
overwhelmed hopeful nostalgic motivated peaceful curious amazed frustrated content
""".split()

TIMES = [
    "yesterday", "last week", "last weekend", "this morning", "last night", "a few days ago",
    "last month", "over the summer", "on Friday", "on Sunday", "two weeks ago", "in May",
    "in June", "last year", "this afternoon", "on my birthday", "during the holidays",
    "in 2022", "at the start of the year", "after work",
]

ADJECTIVES = """
amazing beautiful peaceful crowded quiet tiny huge colorful cozy chaotic relaxing
challenging rewarding fun scary wonderful special strange gorgeous delicious loud
""".split()

FOODS = """
pasta tacos sushi curry pancakes ramen salad burgers dumplings pizza soup cake cookies
brownies lasagna paella smoothies pie bagels noodles
""".split()

# Statements and replies in the register of the LoCoMo chats: first person,
# everyday events, feelings, plans, with names, places and things as slots.
STATEMENTS = [
    "I went {activity} at the {place} {time} and it was {adj}!",
    "{time} I finally tried {activity} with my {relation}, I felt so {feeling}.",
    "My {relation} gave me {thing} {time}, it means a lot to me.",
    "I've been really into {activity} lately, it helps me feel {feeling}.",
    "We visited {place} {time}. The view was {adj} and the {food} was great.",
    "Thanks, {name}! I'm {feeling} about starting {activity} classes next month.",
    "Did I tell you I bought {thing}? I use it every day now.",
    "{time} I took my {relation} to {place} for {food}, we laughed the whole time.",
    "I'm planning a trip to {place} with {name} to go {activity}.",
    "That sounds {adj}, {name}! How long have you been doing {activity}?",
    "I made {food} for the whole family {time} and everyone loved it.",
    "Honestly {activity} is what keeps me sane when work gets {adj}.",
    "I joined a {activity} group at {place}, the people there are so {adj}.",
    "My {relation} is moving to {place}, I'm {feeling} but I'll miss them.",
    "Here's a picture of {thing} I made {time}, what do you think?",
    "I volunteered at {place} {time}, it made me feel {feeling}.",
    "Wow, {name}, that {thing} looks {adj}! Where did you get it?",
    "I ran into {name} at {place} {time}, we talked about {activity} for hours.",
    "We adopted {thing} {time}! The kids are {feeling}.",
    "I've been saving up for {thing} so I can get better at {activity}.",
    "Going to {place} always reminds me of my {relation}.",
    "I was {feeling} before the {activity} competition but I won a {thing}!",
    "{name} and I cooked {food} together {time}, it was {adj}.",
    "I keep a {thing} on my desk to remind me why I started {activity}.",
    "Yeah, {time} was rough, but {activity} at the {place} helped a lot.",
    "I read a {adj} book about {activity} that my {relation} recommended.",
    "Can't wait for our {activity} weekend at {place}, {name}!",
    "It's been {time_word} years since I first went to {place}.",
]

QUESTIONS = [
    "What did {name} do at the {place}?",
    "When did {name} go {activity}?",
    "Who gave {name} {thing}?",
    "Where did {name} go with their {relation}?",
    "How does {name} feel about {activity}?",
    "What did {name} cook {time}?",
    "Why did {name} start {activity}?",
    "What does {name} keep on their desk?",
    "{name} {activity} {place}",
    "Which city is {name}'s {relation} moving to?",
    "What did {name} buy to get better at {activity}?",
    "When did {name} visit {place}?",
    "What competition did {name} win?",
    "Did {name} enjoy {food} at {place}?",
]

TIME_WORDS = ["two", "three", "four", "five", "six", "ten", "twenty"]


class TextGenerator:
    """Deterministic generator of chat turns ("Speaker: text") and questions about them."""

    def __init__(self, seed: int = 0):
        self._rng = random.Random(seed)

    def _slots(self) -> dict[str, str]:
        r = self._rng
        return {
            "name": r.choice(NAMES),
            "relation": r.choice(RELATIONS),
            "activity": r.choice(ACTIVITIES),
            "place": r.choice(PLACES),
            "thing": r.choice(THINGS),
            "feeling": r.choice(FEELINGS),
            "time": r.choice(TIMES),
            "adj": r.choice(ADJECTIVES),
            "food": r.choice(FOODS),
            "time_word": r.choice(TIME_WORDS),
        }

    def turn(self) -> str:
        """One conversational turn with its speaker, sometimes two sentences long."""
        r = self._rng
        text = r.choice(STATEMENTS).format(**self._slots())
        if r.random() < 0.35:  # real turns are often two sentences
            text += " " + r.choice(STATEMENTS).format(**self._slots())
        return f"{r.choice(NAMES)}: {text[0].upper()}{text[1:]}"

    def question(self) -> str:
        """A question of the kind an agent asks its memory."""
        return self._rng.choice(QUESTIONS).format(**self._slots())

    def clause(self) -> str:
        """A short extra sentence, used to vary recycled turns."""
        return self._rng.choice(STATEMENTS).format(**self._slots())

    def name(self) -> str:
        return self._rng.choice(NAMES)
