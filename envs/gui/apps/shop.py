"""Shop: categories, product pages, a cart with quantities, checkout and orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from rounds.envs.gui.device import (
    App,
    Device,
    Route,
    confirm_dialog,
    draft_field,
    go_to,
    switch_to,
)
from rounds.envs.gui.tasks import Step, Task, Template, normalise_answer, opened, pick, visited
from rounds.envs.gui.widgets import Screen, Widget

CATALOG = {
    "Fruit": ("Apples", "Bananas", "Blueberries", "Lemons", "Mangoes", "Pears"),
    "Bakery": ("Bagels", "Baguette", "Croissants", "Rye bread", "Muffins", "Pretzels"),
    "Dairy": ("Butter", "Cheddar", "Greek yogurt", "Milk", "Mozzarella", "Oat milk"),
    "Drinks": ("Apple juice", "Coffee beans", "Green tea", "Lemonade", "Sparkling water"),
    "Household": ("Dish soap", "Paper towels", "Sponges", "Trash bags", "Laundry pods"),
}
STREETS = ("Oak Street", "Maple Avenue", "Harbour Road", "Station Lane", "Hill Crescent")
MAX_QUANTITY = 9

BROWSE: Route = ("shop", "browse")
CART: Route = ("shop", "cart")
ORDERS: Route = ("shop", "orders")
CHECKOUT: Route = ("shop", "checkout")
TABS = ((BROWSE, "Browse"), (CART, "Cart"), (ORDERS, "Orders"))


def category_route(category: str) -> Route:
    return ("shop", "category", category)


def product_route(product: str) -> Route:
    return ("shop", "product", product)


@dataclass
class Order:
    items: dict[str, int]
    address: str
    express: bool
    total_cents: int


@dataclass
class ShopApp(App):
    """The shop's state: prices, the cart, checkout's draft and the orders placed."""

    prices: dict[str, int] = field(default_factory=dict)
    """Price of each product in cents."""
    cart: dict[str, int] = field(default_factory=dict)
    checkout: dict[str, str] = field(default_factory=lambda: {"address": ""})
    express: bool = False
    orders: list[Order] = field(default_factory=list)

    name = "shop"
    title = "Shop"

    @classmethod
    def generate(cls, rng: np.random.Generator) -> ShopApp:
        prices = {
            product: int(rng.integers(79, 1299))
            for products in CATALOG.values()
            for product in products
        }
        return cls(prices=prices)

    def category_of(self, product: str) -> str:
        return next(c for c, products in CATALOG.items() if product in products)

    def total_cents(self) -> int:
        return sum(self.prices[p] * n for p, n in self.cart.items()) + (499 if self.express else 0)

    def root(self) -> Route:
        return BROWSE

    def parent(self, route: Route) -> tuple[Route, str]:
        if route == BROWSE:
            return ("home",), "app:shop"
        if route in (CART, ORDERS):
            return BROWSE, f"tab:{route[1]}"
        if route == CHECKOUT:
            return CART, "checkout"
        if route[1] == "category":
            return BROWSE, f"category:{route[2]}"
        return category_route(self.category_of(route[2])), f"product:{route[2]}"

    def _tabs(self, device: Device, current: Route) -> list[Widget]:
        return [
            Widget(
                "tab",
                label,
                key=f"tab:{route[1]}",
                checked=route == current,
                on_click=switch_to(device, route),
            )
            for route, label in TABS
        ]

    def screen(self, route: Route, device: Device) -> Screen:
        if route == BROWSE:
            body = [
                Widget(
                    "listitem",
                    category,
                    key=f"category:{category}",
                    on_click=go_to(device, category_route(category)),
                )
                for category in CATALOG
            ]
            return Screen("Shop", body, tabs=self._tabs(device, BROWSE))
        if route == CART:
            return self._cart(device)
        if route == ORDERS:
            return self._orders(device)
        if route == CHECKOUT:
            return self._checkout(device)
        if route[1] == "category":
            body = [
                Widget(
                    "listitem",
                    f"{product} — {money(self.prices[product])}",
                    key=f"product:{product}",
                    on_click=go_to(device, product_route(product)),
                )
                for product in CATALOG[route[2]]
            ]
            return Screen(route[2], body)
        return self._product(device, route[2])

    def _product(self, device: Device, product: str) -> Screen:
        in_cart = self.cart.get(product, 0)

        def add() -> str:
            self.cart[product] = in_cart + 1
            device.changed()
            return f"Added {product} to the cart ({in_cart + 1} in the cart)."

        body = [
            Widget("text", f"Price: {money(self.prices[product])}"),
            Widget("text", f"In your cart: {in_cart}"),
            Widget(
                "button",
                "Add to cart",
                key="add_to_cart",
                enabled=in_cart < MAX_QUANTITY,
                on_click=add,
            ),
        ]
        return Screen(product, body)

    def _cart(self, device: Device) -> Screen:
        body: list[Widget] = []
        for product, count in self.cart.items():
            body.append(
                Widget("text", f"{product} × {count}: {money(self.prices[product] * count)}")
            )
            body.append(
                Widget(
                    "row",
                    "",
                    children=[
                        Widget(
                            "button",
                            f"− {product}",
                            key=f"decrease:{product}",
                            enabled=count > 1,
                            on_click=partial(self._change, device, product, -1),
                        ),
                        Widget(
                            "button",
                            f"+ {product}",
                            key=f"increase:{product}",
                            enabled=count < MAX_QUANTITY,
                            on_click=partial(self._change, device, product, 1),
                        ),
                        Widget(
                            "button",
                            f"Remove {product}",
                            key=f"remove:{product}",
                            on_click=partial(self._remove, device, product),
                        ),
                    ],
                )
            )
        if not self.cart:
            body.append(Widget("text", "Your cart is empty."))
        body.append(Widget("text", f"Subtotal: {money(self.total_cents())}"))
        body.append(
            Widget(
                "button",
                "Checkout",
                key="checkout",
                enabled=bool(self.cart),
                on_click=go_to(device, CHECKOUT),
            )
        )
        return Screen("Cart", body, tabs=self._tabs(device, CART))

    def _change(self, device: Device, product: str, delta: int) -> str:
        self.cart[product] = max(1, min(MAX_QUANTITY, self.cart[product] + delta))
        device.changed()
        return f"{product}: {self.cart[product]} in the cart."

    def _remove(self, device: Device, product: str) -> str:
        del self.cart[product]
        device.changed()
        return f"Removed {product} from the cart."

    def _orders(self, device: Device) -> Screen:
        body = [
            Widget(
                "text",
                f"Order {i}: "
                + ", ".join(f"{p} × {n}" for p, n in order.items.items())
                + f" to {order.address}{' (express)' if order.express else ''}, "
                + money(order.total_cents),
            )
            for i, order in enumerate(self.orders, start=1)
        ]
        if not body:
            body = [Widget("text", "No orders yet.")]
        return Screen("Orders", body, tabs=self._tabs(device, ORDERS))

    def _checkout(self, device: Device) -> Screen:
        express = self.express

        def toggle_express() -> str:
            self.express = not express
            device.changed()
            return f"Express delivery is {'off' if express else 'on'}."

        address = self.checkout["address"].strip()
        body = [
            Widget(
                "text", ", ".join(f"{p} × {n}" for p, n in self.cart.items()) or "Nothing to buy."
            ),
            draft_field(device, self.checkout, "address", "Delivery address", 100),
            Widget(
                "checkbox",
                "Express delivery (+$4.99)",
                key="express",
                checked=express,
                on_click=toggle_express,
            ),
            Widget("text", f"Total: {money(self.total_cents())}"),
            Widget(
                "button",
                "Place order",
                key="place_order",
                enabled=bool(address) and bool(self.cart),
                on_click=lambda: _ask(device),
            ),
        ]
        screen = Screen("Checkout", body)
        if device.modal is not None and device.modal.kind == "place_order":

            def place() -> str:
                order = Order(dict(self.cart), address, self.express, self.total_cents())
                self.orders.append(order)
                self.cart.clear()
                self.checkout["address"] = ""
                self.express = False
                device.pop()
                device.replace(ORDERS)
                return f"Order placed: {money(order.total_cents)}."

            screen.dialog = confirm_dialog(
                "Place order?",
                f"Pay {money(self.total_cents())} and deliver to {address}?",
                "Pay",
                place,
                device,
            )
        return screen


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def _ask(device: Device) -> str:
    device.open_modal("place_order")
    return "Please confirm the payment."


# ------------------------------------------------------------------ templates


def _app(device: Device) -> ShopApp:
    app: ShopApp = device.app("shop")
    return app


def _products(rng: np.random.Generator, count: int) -> list[str]:
    return pick(rng, [p for products in CATALOG.values() for p in products], count)


def _address(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(1, 200))} {STREETS[int(rng.integers(len(STREETS)))]}"


def _fill_cart(app: ShopApp, rng: np.random.Generator, products: list[str]) -> None:
    for product in products:
        app.cart[product] = int(rng.integers(1, 4))


def _cart_plan(d: Device, wanted: dict[str, int]) -> list[Step]:
    """Bring the cart to ``wanted`` (products absent from it removed)."""
    cart = _app(d).cart
    steps = []
    for product, count in cart.items():
        if product not in wanted:
            steps.append(Step(CART, f"remove:{product}"))
        elif count != wanted[product]:
            direction = "increase" if count < wanted[product] else "decrease"
            steps.append(Step(CART, f"{direction}:{product}"))
    for product in wanted:
        if product not in cart:
            steps.append(Step(product_route(product), "add_to_cart"))
    return steps


def _checkout_plan(d: Device, address: str, express: bool) -> list[Step]:
    app = _app(d)
    if d.modal is not None and d.modal.kind == "place_order":
        if app.checkout["address"].strip() == address and app.express == express:
            return [Step(CHECKOUT, "confirm")]
        return [Step(CHECKOUT, "cancel")]
    if d.route != CHECKOUT or app.checkout["address"].strip() != address:
        return [Step(CHECKOUT, "field:address", address)]
    if app.express != express:
        return [Step(CHECKOUT, "express")]
    return [Step(CHECKOUT, "place_order")]


def _ordered(d: Device, items: dict[str, int], address: str, express: bool | None) -> bool:
    return any(
        o.items == items
        and o.address.casefold() == address.casefold()
        and (express is None or o.express == express)
        for o in _app(d).orders
    )


def _add(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    product, count = _products(rng, 1)[0], int(rng.integers(1, 4))
    _fill_cart(app, rng, [p for p in _products(rng, 2) if p != product][:1])
    wanted = {**app.cart, product: count}

    return Task(
        goal=f"Add {count} × {product} to the shopping cart (keep what is already there).",
        subgoals=[
            ("shop open", opened("shop")),
            (f"{product} page open", visited(product_route(product))),
            (f"{product} in the cart", lambda d: product in _app(d).cart),
            (f"{count} in the cart", lambda d: _app(d).cart.get(product) == count),
        ],
        verify=lambda d, _: _app(d).cart == wanted,
        plan=lambda d: _cart_plan(d, wanted),
    )


def _remove(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    products = _products(rng, 3)
    _fill_cart(app, rng, products)
    product = products[int(rng.integers(3))]
    wanted = {p: n for p, n in app.cart.items() if p != product}
    return Task(
        goal=f"Remove {product} from the shopping cart.",
        subgoals=[
            ("cart open", visited(CART)),
            (f"{product} removed", lambda d: product not in _app(d).cart),
        ],
        verify=lambda d, _: _app(d).cart == wanted,
        plan=lambda d: _cart_plan(d, wanted),
    )


def _quantity(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    products = _products(rng, 2)
    _fill_cart(app, rng, products)
    product = products[0]
    count = int(rng.choice([n for n in range(1, 7) if n != app.cart[product]]))
    wanted = {**app.cart, product: count}
    return Task(
        goal=f"Change the quantity of {product} in the cart to {count}.",
        subgoals=[
            ("cart open", visited(CART)),
            (f"{count} × {product}", lambda d: _app(d).cart.get(product) == count),
        ],
        verify=lambda d, _: _app(d).cart == wanted,
        plan=lambda d: _cart_plan(d, wanted),
    )


def _buy(express: bool, two: bool) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        products = _products(rng, 2 if two else 1)
        items = {products[0]: int(rng.integers(1, 4)) if two else 1}
        if two:
            items[products[1]] = 1
        address = _address(rng)

        def plan(d: Device) -> list[Step]:
            if _ordered(d, items, address, express):
                return []
            steps = _cart_plan(d, items)
            return steps or _checkout_plan(d, address, express)

        listed = " and ".join(f"{n} × {p}" for p, n in items.items())
        how = "express delivery" if express else "standard delivery"
        return Task(
            goal=f"Order {listed} with {how} to {address}.",
            subgoals=[
                ("shop open", opened("shop")),
                (
                    "cart filled",
                    lambda d: _app(d).cart == items or _ordered(d, items, address, None),
                ),
                ("checkout open", visited(CHECKOUT)),
                ("order placed", lambda d: _ordered(d, items, address, None)),
            ],
            verify=lambda d, _: _ordered(d, items, address, express) and len(_app(d).orders) == 1,
            plan=plan,
        )

    name = "shop.buy_two_express" if two else ("shop.buy_express" if express else "shop.buy")
    return Template(name, "shop", make)


def _checkout_cart(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    _fill_cart(app, rng, _products(rng, 2))
    items, address = dict(app.cart), _address(rng)

    def plan(d: Device) -> list[Step]:
        if _ordered(d, items, address, False):
            return []
        return _cart_plan(d, items) or _checkout_plan(d, address, False)

    return Task(
        goal=f"Buy everything in the cart with standard delivery to {address}.",
        subgoals=[
            ("checkout open", visited(CHECKOUT)),
            ("order placed", lambda d: bool(_app(d).orders)),
        ],
        verify=lambda d, _: _ordered(d, items, address, False) and len(_app(d).orders) == 1,
        plan=plan,
    )


def _price_question(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    product = _products(rng, 1)[0]
    price = money(app.prices[product])
    route = category_route(app.category_of(product))
    return Task(
        goal=f'How much does {product} cost? Answer with finish("$X.YY").',
        subgoals=[("shop open", opened("shop")), (f"{route[2]} open", visited(route))],
        verify=lambda d, answer: normalise_answer(answer) == normalise_answer(price),
        plan=lambda d: [] if route in d.visited else [Step(route)],
        answer=price,
    )


TEMPLATES = (
    Template("shop.add", "shop", _add),
    Template("shop.remove", "shop", _remove),
    Template("shop.quantity", "shop", _quantity),
    _buy(False, False),
    _buy(True, False),
    _buy(True, True),
    Template("shop.checkout_cart", "shop", _checkout_cart),
    Template("shop.price_question", "shop", _price_question),
)
