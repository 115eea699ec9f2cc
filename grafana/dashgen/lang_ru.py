# ruff: noqa: RUF001, E501 - Russian text is Cyrillic by design; the strings are prose, wrapped by sentence
"""Russian titles and descriptions for the dashboards (``python grafana/generate.py --lang ru``).

English text -> Russian, for everything a viewer reads: dashboard and panel titles, descriptions, value
mappings, variable labels and annotations. Queries, legends (label values) and units stay as they are.
A string missing here stays English in the Russian dashboards, and tests/observability/test_dashboards.py
names it: add its translation.
"""

from __future__ import annotations

RU: dict[str, str] = {
    # dashboards
    "reachwatch / Overview": "reachwatch / Обзор",
    "reachwatch / Tor": "reachwatch / Tor",
    "reachwatch / VPN and proxies": "reachwatch / VPN и прокси",
    "reachwatch / Interference": "reachwatch / Вмешательство",
    "reachwatch / Patterns": "reachwatch / Закономерности",
    "reachwatch / Fleet": "reachwatch / Все точки",
    # value mappings
    "unknown": "неизвестно",
    "online": "на связи",
    "international shutdown": "отключение от зарубежного интернета",
    "offline": "нет связи",
    "reachable": "доступно",
    "unreachable": "не отвечает",
    "blocked": "заблокировано",
    "closed / filtered": "закрыт / фильтруется",
    "open": "открыт",
    "failed": "ошибка",
    "ok": "ок",
    # variables and annotations
    "Data source": "Источник данных",
    "Vantage": "Точка",
    "Group": "Группа",
    "Target": "Цель",
    "Vantage state changes": "Смены состояния точки",
    "vantage state changed": "состояние точки изменилось",
    "{{vantage}}": "{{vantage}}",
    "Incidents (start)": "Инциденты (начало)",
    "incident: {{scope_type}} {{scope}}": "инцидент: {{scope_type}} {{scope}}",
    "{{technique}} at {{vantage}} (reachwatch incidents)": "{{technique}}, точка {{vantage}} (reachwatch incidents)",
    # Overview
    "Vantage state": "Состояние точки",
    "Is each vantage online, in an international shutdown (domestic controls work, international ones fail) "
    "or offline (every control fails)? While not online, target verdicts are 'unknown', never 'blocked'.": (
        "Есть ли у каждой точки связь, отключена ли она от зарубежного интернета (внутренние контрольные сайты "
        "отвечают, зарубежные — нет) или связи нет совсем (не отвечает ни один контрольный сайт)? Пока связи "
        "нет, результаты целей — «неизвестно», но никогда не «заблокировано»."
    ),
    "Ports that reach abroad, by vantage state": "Порты, через которые виден зарубеж, по состоянию точки",
    "How many surveyed ports (port_survey targets against reachwatch canary) reach the canary abroad, one line "
    "per vantage state: the baseline while online, and during an international shutdown the few that still "
    "get out (Kazakhstan, January 2022: 179/tcp, 3785, 5060). 'surveyed' is how many ports were tried.": (
        "Сколько проверенных портов (цели port_survey против reachwatch canary) достают до эхо-сервера за "
        "рубежом, по линии на состояние точки: обычный уровень, пока связь есть, и немногие порты, что ещё "
        "выходят наружу при отключении от зарубежного интернета (Казахстан, январь 2022: 179/tcp, 3785, 5060). "
        "«surveyed» — сколько портов проверено."
    ),
    "Ports per survey": "Порты по проверкам",
    "Each surveyed port and transport over time: open (the canary's keyed reply came back) or closed/filtered. "
    "During a shutdown this says where to put bridges. Per port failures: the survey's facts in "
    "/api/v1/status.": (
        "Каждый проверенный порт и транспорт во времени: открыт (вернулся подписанный ответ эхо-сервера) или "
        "закрыт / фильтруется. Во время отключения это подсказывает, на каких портах держать мосты. Ошибки по "
        "портам — в фактах проверки в /api/v1/status."
    ),
    "Open incidents": "Открытые инциденты",
    "Incidents the daemon derives from its journal (reachwatch incidents): a target, a group or kind whose "
    "targets went down together, or the vantage (a shutdown). A bar runs while the incident is open; its label "
    "names the technique (a shutdown: its current state; 'none': unreachable without evidence of blocking). "
    "Start, end with their uncertainty and the evidence: reachwatch incidents show ID, or a report (reachwatch "
    "report).": (
        "Инциденты, которые программа выводит из своего журнала (reachwatch incidents): цель, группа или вид "
        "целей, пропавших вместе, или сама точка (отключение). Полоса идёт, пока инцидент открыт; подпись "
        "называет способ блокировки (для отключения — его текущее состояние; «none» — не отвечает без "
        "доказательств блокировки). Начало, конец с их погрешностью и доказательства: reachwatch incidents "
        "show ID или отчёт (reachwatch report)."
    ),
    "Reachable now, by category": "Доступно сейчас, по категориям",
    "Fraction of targets with a known verdict that are reachable: Tor relays, bridges, other Tor "
    "infrastructure, VPN, proxies, web, and the controls. 'unknown' targets are left out.": (
        "Доля доступных среди целей с известным результатом: ретрансляторы и мосты Tor, другая инфраструктура "
        "Tor, VPN, прокси, сайты и контрольные сайты. Цели с результатом «неизвестно» не учитываются."
    ),
    "Blocked targets by technique": "Заблокированные цели по способу блокировки",
    "How many targets are blocked right now, by how: TCP reset, blackhole, TLS interference or interception, "
    "DNS tampering, block page, throttling, protocol blocking.": (
        "Сколько целей заблокировано сейчас и как: сброс TCP, молчаливое отбрасывание, обрыв или перехват TLS, "
        "подмена DNS, страница блокировки, замедление, блокировка протокола."
    ),
    "Status per target": "Состояние каждой цели",
    "Each target's verdict over time (reachable / unreachable / blocked / unknown). Unlike a state timeline, "
    "boxes are not merged, so short blocks stay visible.": (
        "Результат каждой цели во времени (доступно / не отвечает / заблокировано / неизвестно). В отличие от "
        "шкалы состояний, клетки не сливаются, поэтому короткие блокировки остаются видны."
    ),
    "Blocked now": "Заблокировано сейчас",
    "Targets blocked now, with the technique; sort by any column.": (
        "Цели, заблокированные сейчас, со способом блокировки; сортировка по любому столбцу."
    ),
    "Top failures by stage (last hour)": "Основные ошибки по этапам (за последний час)",
    "Failed attempts in the last hour by the stage that failed (resolve, connect, tls_handshake, "
    "protocol_handshake...) and the failure: where along the path the interference happens.": (
        "Неудачные попытки за последний час по этапу, на котором они сорвались (resolve, connect, "
        "tls_handshake, protocol_handshake...), и по ошибке: где на пути происходит вмешательство."
    ),
    "Probe duration": "Длительность проверки",
    "How long each attempt took; a blackholed target takes its whole timeout.": (
        "Сколько длилась каждая попытка; молча отбрасываемая цель занимает весь свой тайм-аут."
    ),
    # Tor
    "Reachable Tor targets by category (fraction)": "Доступные цели Tor по категориям (доля)",
    "Fraction of individually configured relays, bridges and other Tor targets (with per-target series) that "
    "are reachable. Kazakhstan 2022: relay reachability fell by about 40% while bridge use rose.": (
        "Доля доступных среди отдельно настроенных ретрансляторов, мостов и других целей Tor (с рядами по "
        "каждой цели). Казахстан, 2022: доступность ретрансляторов упала примерно на 40 %, а использование "
        "мостов выросло."
    ),
    "Reachable relays by country": "Доступные ретрансляторы по странам",
    "The share of each relay set's relays that works from here, per country of the relay (the largest "
    "countries by name, then `unknown` and `other`; GeoIP from tor-geoipdb, ip2asn or Onionoo). A censor that "
    "blocks relays hosted in some countries shows here first.": (
        "Доля ретрансляторов каждого набора, доступных отсюда, по стране ретранслятора (крупнейшие страны по "
        "имени, затем `unknown` и `other`; GeoIP из tor-geoipdb, ip2asn или Onionoo). Цензор, блокирующий "
        "ретрансляторы в отдельных странах, виден здесь первым."
    ),
    "Relay verdicts and techniques by country and AS": "Вердикты и способы блокировки ретрансляторов по странам и AS",
    "How the relays of each set are judged now, per country and AS of the relay (`by`): confirmed verdict "
    "and, for blocked ones, the technique (reset, blackhole, TLS interception ...).": (
        "Как сейчас оценены ретрансляторы каждого набора, по стране и AS ретранслятора (`by`): подтверждённый "
        "вердикт и, для заблокированных, способ блокировки (сброс, чёрная дыра, перехват TLS ...)."
    ),
    "Reachable relays by AS": "Доступные ретрансляторы по AS",
    "The same share per autonomous system of the relay (the largest by name, then `unknown` and `other`): "
    "blocking aimed at hosting networks rather than at Tor as a whole.": (
        "Та же доля по автономной системе ретранслятора (крупнейшие по имени, затем `unknown` и `other`): "
        "блокировка, направленная на хостинговые сети, а не на Tor целиком."
    ),
    "Reachable relays per set and flag": "Доступные ретрансляторы по наборам и флагам",
    "Relay sets (a consensus or Onionoo sample, the directory authorities): the fraction of relays whose last "
    "attempt reached the ORPort and verified the identity, per set and consensus flag (`all` = every member). "
    "Aggregated in the daemon, so 7,000 relays are a handful of series.": (
        "Наборы ретрансляторов (выборка из консенсуса или Onionoo, серверы каталога): доля ретрансляторов, "
        "чья последняя попытка дошла до ORPort и подтвердила подлинность, по набору и флагу консенсуса (`all` "
        "— все участники). Сводится в самой программе, поэтому 7 000 ретрансляторов — это несколько рядов."
    ),
    "Relay-set failures by stage": "Ошибки наборов ретрансляторов по этапам",
    "How the relays of each set fail now: identity mismatch, link handshake, reset, timeout.": (
        "Как сейчас отказывают ретрансляторы каждого набора: несовпадение подлинности, рукопожатие канала, "
        "сброс, тайм-аут."
    ),
    "Tor targets": "Цели Tor",
    "Verdict of each relay, directory authority and bridge over time.": (
        "Результат каждого ретранслятора, сервера каталога и моста во времени."
    ),
    "Bridges by transport": "Мосты по транспортам",
    "Bridges per pluggable transport (vanilla, obfs4, snowflake, webtunnel, meek) by verdict: when every bridge "
    "of one transport fails, users of that transport are cut off.": (
        "Мосты по подключаемому транспорту (обычные, obfs4, snowflake, webtunnel, meek) и результату: когда "
        "отказывают все мосты одного транспорта, его пользователи отрезаны."
    ),
    "Bootstrap time": "Время подключения к Tor",
    "Time a fresh tor took to bootstrap (to 100%, or until it stalled), per bootstrap target and transport.": (
        "Сколько времени новому tor понадобилось на подключение (до 100 % или до остановки), по цели и "
        "транспорту."
    ),
    "Bootstrap progress and stall phase": "Ход подключения и этап остановки",
    "How far the last bootstrap got (percent) and the phase it reached: `done`, or where it stalled (conn = the "
    "first hop never answered, handshake = TLS/link blocked, requesting_status / loading_descriptors = "
    "directory fetches blocked, circuit phases = relays blocked).": (
        "Докуда дошло последнее подключение (в процентах) и какой этап достигнут: `done` или где оно "
        "остановилось (conn — первый узел не ответил, handshake — заблокирован TLS или канал, "
        "requesting_status / loading_descriptors — заблокирована загрузка каталога, этапы цепочки — "
        "заблокированы ретрансляторы)."
    ),
    "Tor handshake stages": "Этапы рукопожатия Tor",
    "Time to connect, finish TLS and complete the Tor link handshake per relay (last attempt).": (
        "Время на соединение, TLS и рукопожатие канала Tor по каждому ретранслятору (последняя попытка)."
    ),
    "Tor failures (last hour)": "Ошибки Tor (за последний час)",
    "Why Tor targets failed: identity mismatch (an impostor or TLS middlebox), link handshake failure, reset, "
    "timeout.": (
        "Почему цели Tor не ответили: несовпадение подлинности (подмена или TLS-посредник), сбой рукопожатия "
        "канала, сброс, тайм-аут."
    ),
    # VPN and proxies
    "Reachable by protocol": "Доступность по протоколам",
    "Fraction of endpoints of each protocol (OpenVPN, WireGuard, Shadowsocks, SOCKS5, HTTP proxy...) whose last "
    "attempt succeeded.": (
        "Доля серверов каждого протокола (OpenVPN, WireGuard, Shadowsocks, SOCKS5, HTTP-прокси...), чья "
        "последняя попытка удалась."
    ),
    "Handshake time": "Время рукопожатия",
    "Time of the protocol handshake (and TLS, where the protocol has one) per endpoint.": (
        "Время рукопожатия протокола (и TLS, где он есть) по каждому серверу."
    ),
    "Endpoints": "Серверы",
    "Verdict of each VPN endpoint and proxy over time.": "Результат каждого VPN-сервера и прокси во времени.",
    "Tunnel throughput": "Скорость через туннель",
    "Round-trip throughput of the canary push through each tunnel or proxy (bytes per second): a tunnel that "
    "completes its handshake but is cut or crawls after a few kilobytes is useless.": (
        "Скорость передачи до эхо-сервера и обратно через каждый туннель или прокси (байт в секунду): туннель, "
        "который проходит рукопожатие, но обрывается или ползёт после нескольких килобайт, бесполезен."
    ),
    # Interference
    "TLS interception: presented issuer": "Перехват TLS: кто выдал сертификат",
    "Targets whose certificate failed validation or the pin, with the issuer that signed the substitute "
    "certificate (a national CA, a middlebox).": (
        "Цели, чей сертификат не прошёл проверку или закрепление, с издателем подменного сертификата "
        "(национальный удостоверяющий центр, посредник)."
    ),
    "Blocked targets by technique over time": "Заблокированные цели по способу блокировки во времени",
    "Blocked targets per technique: when did interception, resets or DNS tampering start?": (
        "Заблокированные цели по способу: когда начались перехват, сбросы или подмена DNS?"
    ),
    "DNS failures": "Ошибки DNS",
    "Failed DNS lookups by failure (NXDOMAIN, bogon answer, answer mismatch, SERVFAIL...): DNS tampering shows "
    "up here first.": (
        "Неудачные DNS-запросы по ошибке (NXDOMAIN, ложный адрес, несовпадение ответов, SERVFAIL...): подмена "
        "DNS видна здесь первой."
    ),
    "Throughput against control": "Скорость относительно контрольной",
    "Target throughput divided by the control transfer's (1 = same speed). Throttling keeps this well below 1 "
    "(the threshold is the target's max_ratio, 0.25 by default).": (
        "Скорость цели, делённая на скорость контрольной передачи (1 — одинаково). При замедлении она намного "
        "ниже 1 (порог — max_ratio цели, по умолчанию 0,25)."
    ),
    # Patterns
    "Blocked fraction by hour of day (UTC) x day of week, last 4 weeks": (
        "Доля заблокированного по часу суток (UTC) и дню недели, последние 4 недели"
    ),
    "Average blocked fraction per hour of the day and weekday: evening blocking (Iran 2018, 20:00 every day) is "
    "a bright row. Hours are UTC.": (
        "Средняя доля заблокированного по часу суток и дню недели: вечерние блокировки (Иран, 2018, каждый "
        "день в 20:00) видны яркой строкой. Часы — по UTC."
    ),
    "Blocked fraction by hour of day (UTC), last 4 weeks": "Доля заблокированного по часу суток (UTC), последние 4 недели",
    "Same data as the grid, all weekdays together.": "Те же данные, что в сетке, все дни недели вместе.",
    "Outage timeline: vantage state": "Хронология отключений: состояние точки",
    "Offline and international-shutdown periods per vantage.": (
        "Периоды без связи и отключения от зарубежного интернета по каждой точке."
    ),
    "Outage timeline: reachable fraction by category": "Хронология отключений: доля доступного по категориям",
    "Periods when a category's reachable fraction dropped (red below 50%, orange below 90%).": (
        "Периоды, когда доля доступного в категории падала (красный — ниже 50 %, оранжевый — ниже 90 %)."
    ),
    "Blocked fraction": "Доля заблокированного",
    "Fraction of targets with a known verdict that are blocked.": (
        "Доля заблокированных среди целей с известным результатом."
    ),
    # Fleet
    "Vantages": "Точки",
    "Every vantage with its network identity and when it last reported.": (
        "Все точки с их сетевыми данными и временем последнего отчёта."
    ),
    "Blocked fraction per vantage": "Доля заблокированного по точкам",
    "Side by side: the same targets seen from different ISPs, ASNs and cities.": (
        "Рядом: одни и те же цели глазами разных провайдеров, автономных систем и городов."
    ),
    "Reachable by category per vantage": "Доступность по категориям для каждой точки",
    "Each vantage's reachable fraction per category, for ISP-to-ISP comparison.": (
        "Доля доступного по категориям для каждой точки — для сравнения провайдеров."
    ),
    "Confirmed censorship: reachable from a reference vantage, failing inside": (
        "Подтверждённая цензура: доступно из эталонной точки, не работает внутри"
    ),
    "Targets a reference vantage outside the country (vantage_role=reference) reaches while an in-country "
    "vantage does not: the target works, the path from inside is interfered with.": (
        "Цели, до которых доходит эталонная точка за рубежом (vantage_role=reference), но не доходит точка "
        "внутри страны: цель работает, а на пути изнутри — вмешательство."
    ),
    "Same target, every vantage": "Одна цель, все точки",
    "Last attempt's outcome per target and vantage (in-country and reference).": (
        "Итог последней попытки по цели и точке (внутри страны и эталонной)."
    ),
    "Probe start lag per vantage": "Опоздание начала проверок по точкам",
    "How late scheduled attempts start on average (10 min window): concurrency limits, destination spacing or "
    "a busy host. Minutes of lag mean the vantage cannot carry its target list at the configured intervals.": (
        "Насколько в среднем опаздывают запланированные попытки (окно 10 мин): ограничения одновременности, "
        "промежутки между попытками к одному адресу или занятая машина. Опоздание на минуты значит, что точка "
        "не успевает проверять свой список с заданными интервалами."
    ),
    "Reference vantages reachable": "Доступность эталонных точек",
    "Whether each in-country vantage could read its reference vantages on the last try. Without one, local "
    "failures stay 'unreachable' instead of being attributed to a censor.": (
        "Смогла ли каждая точка внутри страны получить данные своих эталонных точек при последней попытке. Без "
        "них местные сбои остаются «не отвечает», а не приписываются цензору."
    ),
}
