"""Short news articles in the newsroom's languages, written for the tests (no language field).

Each has what trips a naive splitter or index: abbreviations, initials, ordinals, decimal
numbers, quotes, Turkish dotted and dotless i, Ukrainian apostrophes, Cyrillic ё.
"""

from __future__ import annotations

RU = (
    "Анкара и Москва обсудили поставки С-400",
    "Министр иностранных дел Турции М. Чавушоглу 12 марта прибыл в Москву. Переговоры длились "
    "около 3,5 ч. и прошли, по словам дипломатов, «в деловой атмосфере». Стороны обсудили "
    "поставку второй партии зенитных ракетных систем С-400, т. е. ещё четырёх дивизионов.\n\n"
    "По данным ТАСС, контракт оценивается в 2,5 млрд долл. США. Ёмкость рынка вооружений в "
    "регионе растёт, отметил эксперт проф. Иванов. Следующий раунд переговоров пройдёт в Анкаре.",
)
UK = (
    "Україна і Туреччина домовилися про виробництво дронів",
    "Міністр оборони України О. Резніков 3 лютого відвідав Анкару. Сторони підписали угоду про "
    "спільне виробництво безпілотників «Байрактар» на території України, повідомило "
    "Міноборони. Завод коштуватиме близько 100 млн дол., тобто вдвічі більше, ніж планували "
    "у 2021 р.\n\nЗа словами міністра, пʼять нових машин передадуть ЗСУ до кінця року. "
    "Туреччина також пообіцяла допомогти з навчанням операторів, зокрема в м. Стамбул.",
)
TR = (
    "İstanbul'da Karadeniz güvenliği zirvesi yapıldı",
    "Dışişleri Bakanı Dr. Ahmet Yılmaz, 14 Mart'ta İstanbul'da düzenlenen zirvede konuştu. "
    "Yılmaz, Türkiye'nin Karadeniz'de istikrarı korumak için 3. kez arabuluculuk yapmaya hazır "
    "olduğunu söyledi. Toplantıya Rusya ve Ukrayna'dan heyetler katıldı.\n\n"
    "Prof. Dr. Ayşe Kılıç'a göre tahıl koridoru anlaşması 2,5 milyon ton ürünün taşınmasını "
    "sağladı. ILIK geçen görüşmelerin ardından taraflar ortak bir bildiri yayımladı. Bir sonraki "
    "toplantı Ankara'da yapılacak.",
)
DE = (
    "Bundesregierung prüft Lieferung von Flugabwehrsystemen",
    "Die Bundesregierung prüft nach Angaben aus Regierungskreisen die Lieferung weiterer "
    "Flugabwehrsysteme an die Ukraine. Verteidigungsminister Dr. Klaus Berger sagte am 5. März "
    "in Berlin, die Gespräche mit den Partnern seien weit fortgeschritten. Die Kosten liegen "
    "bei ca. 1,2 Mrd. Euro.\n\n"
    "Kritik kam u. a. von der Opposition, die mehr Tempo fordert. Die Straße vor dem "
    "Ministerium war am Nachmittag gesperrt. Eine Entscheidung soll bis zum 20. April fallen.",
)
EN = (
    "Turkey weighs second batch of Russian missile systems",
    "Turkey is weighing the purchase of a second batch of Russian S-400 missile systems, "
    "officials in Ankara said on Tuesday. Mr. Cavusoglu told reporters the talks were "
    "progressing. The deal is worth about $2.5 bn.\n\n"
    "Nato allies have warned that the systems are incompatible with the alliance's defences. "
    "Washington removed Turkey from the F-35 programme in 2019 over the first purchase.",
)
ARTICLES = {"ru": RU, "uk": UK, "tr": TR, "de": DE, "en": EN}
