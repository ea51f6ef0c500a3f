"""Words that carry no topic, per supported language, as journalists' questions use them.

Short hand-made lists (function words, question words and the newsroom's filler: "said",
"news", "week"), not a linguist's full list: a content word wrongly dropped costs more than a
function word kept. English is the list the keyword side has always used.
"""

from __future__ import annotations

STOPWORDS_BY_LANGUAGE: dict[str, frozenset[str]] = {
    "en": frozenset(
        """
        a about above after again against all am an and any are as at be because been before
        being below between both but by can could did do does doing down during each few for
        from further had has have having he her here hers him his how i if in into is it its
        itself just me more most my no nor not now of off on once only or other our out over own
        same she should so some such than that the their them then there these they this those
        through to too under until up very was we were what when where which while who whom why
        will with would you your said says say week news year new one two also
        """.split()  # noqa: SIM905
    ),
    "de": frozenset(
        """
        der die das den dem des ein eine einer eines einem einen und oder aber auch als an am
        auf aus bei bis da dass durch für gegen hat haben hatte hatten ich ihr ihre im in ist
        ja mit nach nicht noch nun nur ob sich sie sind so über um uns unter vom von vor war
        waren was welche welcher welches wer wie wo warum wann weshalb wieso wurde wurden wird
        werden zu zum zur es er man mehr sehr schon dieser diese dieses jetzt heute gibt gab
        sagte sagt gesagt woche jahr neue neuen neu nachrichten kann können soll sollen
        """.split()  # noqa: SIM905
    ),
    "ru": frozenset(
        """
        а без более бы был была были было быть в вам вас весь во вот все всё всего вы где да
        даже для до его ее её если есть ещё еще же за здесь и из или им их к как какая какие
        какой каким когда кто ли либо между мне мы на над нас не него нее неё нет ни но ну о об
        однако он она они оно от по под при про с со так также такой там те тем то того тоже
        той только том ту тут у уже хотя чего чей чем что чтобы чья эта эти это этот я почему
        зачем сколько сказал сказала заявил заявила сообщил неделе неделю году год новости
        новый новые может можно будет
        """.split()  # noqa: SIM905
    ),
    "uk": frozenset(
        """
        а або але б без би був була були було бути в вам вас весь від він вона вони воно все
        всі вже де для до е є ж же з за зі і із її їх й його к як яка які який яким коли хто
        ми між на над нас не нема немає ні но о об от по під при про с та так також там те
        тим то тож тільки ті у уже хоча це цей ці цього чи чим що щоб я чому навіщо скільки
        сказав сказала заявив заявила повідомив тижні тиждень році рік новини новий нові може
        можна буде
        """.split()  # noqa: SIM905
    ),
    "tr": frozenset(
        """
        acaba ama ancak bana bazı belki ben beni benim bir biri birkaç birşey biz bize bizi bu
        buna bunda bundan bunu bunun da daha de değil diye en gibi hangi hani hem hep hepsi her
        hiç için ile ise kadar ki kim kimi kimin mi mı mu mü na nasıl ne neden nerede nereye
        niçin niye o olan olarak oldu olduğu olmak ona ondan onlar onu onun sen siz şey şu
        şimdi tüm ve veya ya yani yine söyledi dedi açıkladı hafta yıl haber haberler yeni
        """.split()  # noqa: SIM905
    ),
}
